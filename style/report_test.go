package style

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/masque-ai/masque/internal/browsertest"
)

// reportSet profiles voices-mini and gives it a pragmatic part with known
// tag scores (the numbers the report must draw).
func reportSet(t *testing.T) *Set {
	chars, err := LoadCharacters("testdata/voices-mini", DataOptions{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := Run(context.Background(), Config{Characters: chars})
	if err != nil {
		t.Fatal(err)
	}
	set.Pragmatic = &PragmaticSet{Embedder: "test", TagSet: "t", Threshold: 0.4, Tags: []string{"archaic", "formal"}}
	for i, p := range set.Characters {
		s := 0.2 * float64(i)
		p.Tags = []TagScore{{Name: "archaic", Score: 0.9 - s, On: 0.9-s > 0.4}, {Name: "formal", Score: s - 0.3, On: s-0.3 > 0.4}}
	}
	return set
}

func TestReportHTML(t *testing.T) {
	set := reportSet(t)
	var b bytes.Buffer
	if err := WriteReport(&b, set); err != nil {
		t.Fatal(err)
	}
	h := b.String()
	for _, want := range []string{`id="radar"`, "clausal embedding", "fragments/ellipsis", `data-character="kjv"`, `data-tag="archaic"`, ">unto<"} {
		if !strings.Contains(h, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(h, "<script") || strings.Contains(h, "http://") && !strings.Contains(h, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("the report is not self-contained")
	}
}

// TestReportInChromium opens the report in headless Chromium and checks what
// it lays out: one radar polygon per character with 14 points inside the
// chart, 14 axis labels, a keyword table per character, tag bars whose
// widths follow the scores.
func TestReportInChromium(t *testing.T) {
	ctx := browsertest.Context(t, "the style report", 1200, 900, 90*time.Second)
	set := reportSet(t)
	path := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteReport(f, set); err != nil {
		t.Fatal(err)
	}
	f.Close()
	type layout struct {
		Series, Axes, Tables, Rows, Bars int
		InChart                          bool
		BarWidths                        []float64
		Title                            string
	}
	js := `(() => {
		const svg = document.querySelector('#radar').getBoundingClientRect();
		const polys = [...document.querySelectorAll('#radar polygon.series')];
		let inChart = polys.length > 0;
		for (const p of polys) {
			const pts = p.getAttribute('points').trim().split(/\s+/);
			if (pts.length !== 14) inChart = false;
			const r = p.getBoundingClientRect();
			if (r.left < svg.left - 1 || r.right > svg.right + 1 || r.top < svg.top - 1 || r.bottom > svg.bottom + 1) inChart = false;
		}
		const bars = [...document.querySelectorAll('#char-0 rect.bar')].map(r => r.getBoundingClientRect().width);
		return {Series: polys.length, Axes: document.querySelectorAll('#radar text.axis').length,
			Tables: document.querySelectorAll('table.keywords').length,
			Rows: document.querySelectorAll('#char-0 table.keywords tr').length - 1,
			Bars: document.querySelectorAll('rect.bar').length, InChart: inChart, BarWidths: bars, Title: document.title};
	})()`
	var got layout
	err = chromedp.Do(ctx, chromedp.Navigate("file://"+path), chromedp.WaitVisible(chromedp.CSS(`#radar`)),
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			v, err := chromedp.Evaluate[layout](js)(ctx, tg)
			got = v
			return chromedp.Void{}, err
		})
	if err != nil {
		t.Fatalf("driving chromium: %v", err)
	}
	n := len(set.Characters)
	if got.Series != n || got.Axes != 14 || !got.InChart || got.Tables != n || got.Rows != len(set.Characters[0].Keywords) || got.Bars != 2*n {
		t.Fatalf("layout %+v (characters %d, keywords %d)", got, n, len(set.Characters[0].Keywords))
	}
	// archaic 0.9 and formal −0.3 for the first character: bar widths in ratio 3:1.
	if len(got.BarWidths) != 2 || got.BarWidths[1] <= 0 || abs(got.BarWidths[0]/got.BarWidths[1]-3) > 0.05 {
		t.Errorf("tag bar widths %v, want ratio 3", got.BarWidths)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
