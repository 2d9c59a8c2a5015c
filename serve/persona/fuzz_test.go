package persona

import "testing"

// FuzzParseCard feeds arbitrary bytes (uploads are untrusted) to ParseCard:
// it must return a card or an error, never panic, and a card it accepts
// must give a valid persona spec.
func FuzzParseCard(f *testing.F) {
	f.Add([]byte(v2Card))
	f.Add([]byte(`{"name":"x","description":"y"}`))
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x00IEND\xaeB`\x82"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCard(data)
		if err != nil {
			return
		}
		s := c.Spec()
		if err := ValidName(s.Name); err != nil {
			t.Fatalf("card %q gives the invalid name %q: %v", c.Name, s.Name, err)
		}
	})
}
