// Package browsertest starts a headless Chromium (over the DevTools
// protocol, with chromedp) for the tests that check pages in a browser:
// reports and the playground. Tests skip, with the reason, where no
// Chromium is installed.
package browsertest

import (
	"context"
	"os"
	"os/exec"
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
