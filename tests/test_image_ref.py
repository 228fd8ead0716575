"""`ImageRef`'s tag is the distribution spec's `[\\w][\\w.-]{0,127}`, whose `\\w` is ASCII."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from mlplatform.config_types import ImageRef


class _Image(BaseModel):
    image: ImageRef


@pytest.mark.parametrize(
    "image", ["ghcr.io/example/serving:1.0.0", "registry:5000/team/model:v6_rc.1-gpu", "ghcr.io/x/y:" + "a" * 128]
)
def test_a_tag_of_ascii_word_characters_dots_and_dashes_parses(image: str):
    assert _Image(image=image).image == image


@pytest.mark.parametrize(
    "image", ["ghcr.io/example/serving:vü", "ghcr.io/example/serving:.1", "ghcr.io/x/y:" + "a" * 129]
)
def test_a_tag_outside_the_spec_is_refused(image: str):
    with pytest.raises(ValidationError, match="should match pattern"):
        _Image(image=image)
