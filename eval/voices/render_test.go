package voices

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// chromium returns the path of a headless-capable Chromium, or "".
func chromium() string {
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	return ""
}

// screenshot renders the page with headless Chromium and checks that the
// heat maps and bars were drawn: enough pixels of the greedy colour
// (#0072B2, also the heat map's full shade) and of T=0.8's (#E69F00).
func screenshot(t *testing.T, bin, htmlPath string) {
	t.Helper()
	abs, _ := filepath.Abs(htmlPath)
	shot := filepath.Join(t.TempDir(), "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--screenshot="+shot, "--window-size=1200,1400", "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
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
