"""The tools wing: what people and CI run around the Pulumi program.

The program wing (`mlplatform.platform`, `mlplatform.model` and the modules they
stand on: `configuration`, `config_types`, `labels`, `security`, `pem`) is what
`pulumi up` runs. Nothing in it imports this package; a test holds that seam, and
`mlplatform.tools.ci.changed_stacks` relies on it: a change here previews no stack.
"""
