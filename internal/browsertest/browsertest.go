// Package browsertest starts a headless Chromium (over the DevTools
// protocol, with chromedp) for the tests that check pages in a browser:
// reports and the playground. Tests skip, with the reason, where no
// Chromium is installed.
package browsertest

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Find returns a Chromium or Chrome binary: $MASQUE_CHROMIUM, or the first
// of the usual names on PATH; "" when there is none.
func Find() string {
	if p := os.Getenv("MASQUE_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// Context starts a headless Chromium with a fresh profile and a window of
// width × height, and returns a chromedp context that ends after timeout
// (and with the test). It skips the test, naming what, when no Chromium is
// found.
func Context(t testing.TB, what string, width, height int, timeout time.Duration) context.Context {
	t.Helper()
	bin := Find()
	if bin == "" {
		t.Skipf("chromium not found (install Debian's chromium package, or set MASQUE_CHROMIUM): skipping the browser test of %s", what)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelTime(); cancel(); cancelAlloc() })
	return ctx
}

// Screenshot renders the local page htmlPath in a headless Chromium window
// of width × height and returns the picture. It skips the test, naming what,
// when no Chromium is found, and fails it when Chromium fails or writes no
// picture.
func Screenshot(t testing.TB, what, htmlPath string, width, height int) image.Image {
	t.Helper()
	bin := Find()
	if bin == "" {
		t.Skipf("chromium not found (install Debian's chromium package, or set MASQUE_CHROMIUM): skipping the browser test of %s", what)
	}
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", width, height), "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium on %s: %v\n%s", htmlPath, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot of %s: %v", htmlPath, err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot of %s: %v", htmlPath, err)
	}
	return img
}
