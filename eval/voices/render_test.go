package voices

import (
	"testing"

	"github.com/masque-ai/masque/internal/browsertest"
)

// screenshot renders the page with headless Chromium and checks that the
// heat maps and bars were drawn: enough pixels of the greedy colour
// (#0072B2, also the heat map's full shade) and of T=0.8's (#E69F00).
func screenshot(t *testing.T, htmlPath string) {
	t.Helper()
	img := browsertest.Screenshot(t, "the eval voices report", htmlPath, 1200, 1400)
	blue, orange := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if r < 40 && g > 90 && g < 140 && bl > 150 && bl < 210 {
				blue++
			}
			if r > 200 && g > 130 && g < 180 && bl < 40 {
				orange++
			}
		}
	}
	if blue < 200 || orange < 50 {
		t.Fatalf("the rendered report lacks its plots: %d blue, %d orange pixels", blue, orange)
	}
}
