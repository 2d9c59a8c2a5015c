// Command masque sculpts lightweight, persona-consistent role-play models out
// of general language models and serves them. Run `masque --help`.
package main

import (
	"os"

	"github.com/masque-ai/masque/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
