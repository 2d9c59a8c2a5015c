// Package textarg reads the "TEXT or @FILE" arguments of masque's flags and
// specs: a value that starts with @ names a file whose trimmed contents are
// the text.
package textarg

import (
	"os"
	"strings"
)

// Read returns s, or the contents of FILE (surrounding white space removed)
// when s is @FILE. A missing or unreadable file is the os error, which names
// the path.
func Read(s string) (string, error) {
	name, ok := strings.CutPrefix(s, "@")
	if !ok {
		return s, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
