package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

// plainEvery is how often a progress line is printed where stderr is not a
// terminal (a log file, a pipe).
var plainEvery = 10 * time.Second

// quietFlag adds --quiet (no progress display) to a long-running command.
func (e *env) quietFlag(c *cobra.Command) {
	c.Flags().BoolVar(&e.quiet, "quiet", false, "show no progress (results and warnings are still printed)")
}

// isTerminal reports whether w is a character device (progress bars are
// redrawn in place only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// meter shows the progress of one stage on stderr: on a terminal a bar
// redrawn in place; elsewhere one plain line (count, rate, ETA) every
// plainEvery and one when the stage ends, so that logs hold no carriage
// returns; nothing with --quiet. It is safe for concurrent use.
type meter struct {
	mu    sync.Mutex
	w     io.Writer
	desc  string
	unit  string // "" (items), "bytes", or a plural such as "rows"
	every time.Duration
	quiet bool
	tty   bool

	bar         *progressbar.ProgressBar
	start, last time.Time
	done, total int64
	note        string
	ended       bool
}

// meter returns a progress display for one stage; unit names what is
// counted ("" for plain items, "bytes" for sizes).
func (e *env) meter(desc, unit string) *meter {
	return &meter{w: e.stderr, desc: desc, unit: unit, every: plainEvery, quiet: e.quiet, tty: isTerminal(e.stderr)}
}

// terminalMeter is a meter that shows only a bar on a terminal: where
// stderr is not one (a log, a pipe), or when quiet, it shows nothing.
func (e *env) terminalMeter(desc, unit string, quiet bool) *meter {
	m := e.meter(desc, unit)
	m.quiet = m.quiet || quiet || !m.tty
	return m
}

// set records progress: done of total.
func (m *meter) set(done, total int64) {
	if m.quiet {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.start.IsZero() || (m.ended && done < total) {
		m.start, m.last, m.ended, m.bar = now, now, false, nil
	}
	if m.ended {
		return
	}
	m.done, m.total = done, total
	if m.tty {
		if m.bar == nil {
			m.bar = m.newBar(total)
		}
		m.bar.ChangeMax64(total)
		_ = m.bar.Set64(done)
	} else if now.Sub(m.last) >= m.every && done < total {
		m.last = now
		fmt.Fprintln(m.w, m.line(now))
	}
}

// describe sets a note shown after the count (a loss, kept/rejected counts).
func (m *meter) describe(note string) {
	if m.quiet {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.note = note
	if m.bar != nil {
		m.bar.Describe(m.label())
	}
}

// logf prints a line of its own, above the bar on a terminal.
func (m *meter) logf(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil && !m.ended {
		_ = m.bar.Clear()
	}
	fmt.Fprintf(m.w, format+"\n", args...)
}

// end closes the stage: the bar's line is finished on a terminal, and a last
// plain line with the totals is printed elsewhere. Later calls do nothing.
func (m *meter) end() {
	if m.quiet {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended || m.start.IsZero() {
		return
	}
	m.ended = true
	if m.bar != nil {
		_ = m.bar.Exit()
		fmt.Fprintln(m.w)
		return
	}
	if !m.tty {
		fmt.Fprintln(m.w, m.line(time.Now()))
	}
}

func (m *meter) label() string {
	if m.note == "" {
		return m.desc
	}
	return strings.TrimSpace(m.desc + " " + m.note)
}

func (m *meter) newBar(total int64) *progressbar.ProgressBar {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(m.w),
		progressbar.OptionSetDescription(m.label()),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
	}
	switch m.unit {
	case "":
	case "bytes":
		opts = append(opts, progressbar.OptionShowBytes(true))
	default:
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(m.unit))
	}
	return progressbar.NewOptions64(total, opts...)
}

// line is the plain progress line: "desc 120/1000 (12%), 3.4 rows/s, ETA 4m20s note",
// or at the end "desc 1000/1000 in 5m0s, 3.3 rows/s note".
func (m *meter) line(now time.Time) string {
	el := now.Sub(m.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(m.done) / s
	}
	unit := m.unit
	if unit == "" {
		unit = "it"
	}
	count := fmt.Sprintf("%d/%d", m.done, m.total)
	rs := fmt.Sprintf("%.2f %s/s", rate, unit)
	if m.unit == "bytes" {
		count = fmt.Sprintf("%.1f/%.1f MB", float64(m.done)/1e6, float64(m.total)/1e6)
		rs = fmt.Sprintf("%.1f MB/s", rate/1e6)
	}
	var b strings.Builder
	b.WriteString(m.desc + " " + count)
	if m.ended || m.done >= m.total {
		fmt.Fprintf(&b, " in %s, %s", el.Round(time.Second), rs)
	} else {
		if m.total > 0 {
			fmt.Fprintf(&b, " (%.0f%%)", 100*float64(m.done)/float64(m.total))
		}
		eta := "?"
		if rate > 0 && m.total > m.done {
			eta = time.Duration(float64(m.total-m.done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		fmt.Fprintf(&b, ", %s, ETA %s", rs, eta)
	}
	if m.note != "" {
		b.WriteString(", " + m.note)
	}
	return b.String()
}

// progress returns a progress callback for one stage; the stage ends when
// done reaches total.
func (e *env) progress(desc string) func(done, total int) {
	m := e.meter(desc, "")
	return func(done, total int) {
		m.set(int64(done), int64(total))
		if done >= total {
			m.end()
		}
	}
}

// stages returns a progress callback for a pipeline of named stages (which
// may run at the same time), one meter per stage, prefix before each name; a
// stage ends when done reaches total.
func (e *env) stages(prefix string) func(stage string, done, total int) {
	var mu sync.Mutex
	meters := map[string]*meter{}
	return func(stage string, done, total int) {
		mu.Lock()
		m := meters[stage]
		if m == nil {
			m = e.meter(strings.TrimSpace(prefix+" "+stage), "")
			meters[stage] = m
		}
		mu.Unlock()
		m.set(int64(done), int64(total))
		if done >= total {
			m.end()
		}
	}
}
