// Command pulumi-resource-kubernetes is the provider's own entry point (its cmd/ main.go).
//
// Upstream's Makefile generates the two embedded files from schema.json and
// terraform-mapping.json before building; the module proxy's copy carries only
// those sources, so scripts/e2e-tools.sh runs upstream's generate.go to make
// them in the build directory.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
