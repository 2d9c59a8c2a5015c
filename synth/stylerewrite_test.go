package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/synth/teacher"
)

func TestParseStyleRewrite(t *testing.T) {
	for _, c := range []struct{ in, neutral, trace string }{
		{"Neutral: The door is shut.\nReasoning: Anger makes him curt.", "The door is shut.", "Anger makes him curt."},
		{"**Neutral:** \"The door is shut.\"\n\n**Reasoning:** Anger\nmakes him curt.", "The door is shut.", "Anger makes him curt."},
		{"1. Neutral rewrite: It rains.\n2. Reasoning: Gloom.", "It rains.", "Gloom."},
		{"```\nneutral: It rains.\ntrace: Gloom.\n```", "It rains.", "Gloom."},
		{"It rains, I think.", "", ""},
		{"Reasoning: only a trace", "", "only a trace"},
	} {
		n, tr := ParseStyleRewrite(c.in)
		if n != c.neutral || tr != c.trace {
			t.Errorf("ParseStyleRewrite(%q) = %q, %q; want %q, %q", c.in, n, tr, c.neutral, c.trace)
		}
	}
}

func TestAlignSentences(t *testing.T) {
	a := SplitSentences("Seth lived one hundred five years, then became the father of Enosh. Seth lived after he became the father of Enosh eight hundred seven years, and became the father of other sons and daughters. All of the days of Seth were nine hundred twelve years, then he died.")
	b := SplitSentences("And Seth lived an hundred and five years, and begat Enos: and Seth lived after he begat Enos eight hundred and seven years, and begat sons and daughters. And all the days of Seth were nine hundred and twelve years: and he died.")
	if len(a) != 3 || len(b) != 2 {
		t.Fatalf("sentences %q %q", a, b)
	}
	got := AlignSentences(a, b)
	want := [][2]string{{a[0] + " " + a[1], b[0]}, {a[2], b[1]}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("AlignSentences = %q\nwant %q", got, want)
	}
	if segs := Segments(got, 12); len(segs) != 2 {
		t.Fatalf("Segments(12) = %q", segs)
	}
	if segs := Segments(got, 100); len(segs) != 1 || segs[0][1] != strings.Join(b, " ") {
		t.Fatalf("Segments(100) = %q", segs)
	}
	if AlignSentences(nil, b) != nil {
		t.Fatal("empty side aligned")
	}
}

// TestStyleRewriteParallel builds style-rewrite rows from the voices
// corpus format without a teacher: WEB (neutral) and KJV (styled) rows
// paired by contrast key.
func TestStyleRewriteParallel(t *testing.T) {
	dir := filepath.Join("testdata", "voices-pair")
	lines, probs, err := ReadVoicePairs(dir, "web", "kjv", "test", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || len(probs) != 2 {
		t.Fatalf("%d lines, problems %v", len(lines), probs)
	}
	for _, p := range probs {
		if !strings.Contains(p.Msg, "John 11:35") && !strings.Contains(p.Msg, "Exodus 20:13") {
			t.Fatalf("problem %v", p)
		}
	}
	segs, _, err := ReadVoicePairs(dir, "web", "kjv", "test", 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	// The segments of a passage give back its text, in order.
	var styled, neutral []string
	for _, s := range segs {
		if strings.HasPrefix(s.Source, "Genesis 1:1-3#") {
			styled, neutral = append(styled, s.Styled), append(neutral, s.Neutral)
		}
	}
	if strings.Join(styled, " ") != lines[0].Styled || strings.Join(neutral, " ") != lines[0].Neutral {
		t.Fatalf("segments do not rebuild the passage:\n%q\n%q", styled, lines[0].Styled)
	}
	if _, _, err := ReadVoicePairs(dir, "web", "spurgeon", "test", 0); err == nil || !strings.Contains(err.Error(), "spurgeon") {
		t.Fatalf("missing voice: %v", err)
	}

	out := t.TempDir()
	hints := map[string]StyleHint{"kjv": {Persona: "You are the voice of the King James Bible of 1611.", Tags: []string{"archaic", "pious"}, Keywords: []string{"begat", "thou"}}}
	cfg := StyleConfig{Common: Common{Out: out, Quality: QualityOptions{Language: "en"}}, Lines: segs, Hints: hints}
	sum, err := RunStyleRewrite(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || sum.Kept != len(segs) {
		t.Fatalf("summary %+v", sum)
	}
	rows := readJSONL(t, filepath.Join(out, FileStyleRows))
	chat := readJSONL(t, filepath.Join(out, FileStyleChat))
	if len(rows) != len(segs) || len(chat) != len(segs) {
		t.Fatalf("%d rows, %d chat rows", len(rows), len(chat))
	}
	bySource := map[string]StyleLine{}
	for _, s := range segs {
		bySource[s.Source] = s
	}
	for i, r := range rows {
		if k := keysOf(r); k != "character,neutral,source,styled,system,user" {
			t.Fatalf("row keys %s", k)
		}
		src := bySource[r["source"].(string)]
		msgs := chat[i]["messages"].([]any)
		sys, user, asst := msgs[0].(map[string]any)["content"], msgs[1].(map[string]any)["content"], msgs[2].(map[string]any)["content"]
		if r["character"] != "kjv" || r["styled"] != src.Styled || r["neutral"] != src.Neutral || asst != src.Styled {
			t.Fatalf("row %v\nchat %v", r, chat[i])
		}
		if sys != "You are the voice of the King James Bible of 1611.\nStyle: archaic, pious.\nKeywords: begat, thou." || sys != r["system"] {
			t.Fatalf("system %q", sys)
		}
		if user != "Rewrite in your own voice: "+src.Neutral || user != r["user"] {
			t.Fatalf("user %q", user)
		}
	}
	before, _ := os.ReadFile(filepath.Join(out, FileStyleChat))
	sum, err = RunStyleRewrite(context.Background(), cfg)
	if err != nil || sum.Resumed != len(segs) || sum.Kept != 0 {
		t.Fatalf("rerun %+v %v", sum, err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, FileStyleChat)); !bytes.Equal(before, after) {
		t.Fatal("rerun changed the output")
	}
	// Other hints: another run, not a silent continuation.
	cfg.Hints = nil
	if _, err := RunStyleRewrite(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "other settings") {
		t.Fatalf("changed hints: %v", err)
	}
	// Lines without a neutral counterpart need a teacher.
	_, err = RunStyleRewrite(context.Background(), StyleConfig{Common: Common{Out: t.TempDir()}, Lines: []StyleLine{{Character: "kjv", Styled: "Thou shalt not kill."}}})
	if err == nil || !strings.Contains(err.Error(), "teacher") {
		t.Fatalf("no teacher: %v", err)
	}
}

func styleTestLines() []StyleLine {
	return []StyleLine{
		{Character: "kjv", Styled: "And God said, Let there be light: and there was light.", Source: "a"},
		{Character: "kjv", Styled: "Thou shalt not kill.", Source: "b"},
		{Character: "kjv", Styled: "Jesus wept.", Source: "c"},
	}
}

// TestStyleRewriteAgainstMasqueServe runs the teacher mode against
// `masque serve` over HTTP with streaming (stories260K, context raised as
// in TestAgainstMasqueServe; its text is nonsense, so the rows are kept
// flagged and only the formats and counts are checked), then reruns it:
// every row is resumed and no request is sent again.
func TestStyleRewriteAgainstMasqueServe(t *testing.T) {
	srv := masqueServe(t)
	out := t.TempDir()
	cache := openCache(t, filepath.Join(out, FileCache))
	cl := modelTeacher(srv, "base", cache, teacher.Options{Concurrency: 2, MaxAttempts: 3})
	hints := map[string]StyleHint{"kjv": {Tags: []string{"archaic"}, Keywords: []string{"begat"}}}
	cfg := StyleConfig{Common: Common{Out: out, Teacher: cl, TeacherModel: "base", Seed: 1, MaxTokens: 24, Temperature: 0.7, FlagOnly: true,
		Quality: QualityOptions{Language: "any"}}, Lines: styleTestLines(), Hints: hints, Retries: -1}
	sum, err := RunStyleRewrite(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 3 || sum.Kept != 3 || !sum.Complete || sum.Teacher == nil || sum.Teacher.Requests != 3 {
		t.Fatalf("summary %+v %+v", sum, sum.Teacher)
	}
	chat := readJSONL(t, filepath.Join(out, FileStyleChat))
	if len(chat) != 3 {
		t.Fatalf("%d chat rows", len(chat))
	}
	lines := map[string]bool{}
	for _, l := range styleTestLines() {
		lines[l.Styled] = true
	}
	for _, r := range chat {
		msgs := r["messages"].([]any)
		sys := msgs[0].(map[string]any)["content"].(string)
		asst := msgs[2].(map[string]any)["content"].(string)
		if sys != "You are kjv.\nStyle: archaic.\nKeywords: begat." {
			t.Fatalf("system %q", sys)
		}
		line := asst
		if i := strings.Index(asst, "</think>"); i >= 0 {
			if !strings.HasPrefix(asst, "<think>") {
				t.Fatalf("assistant %q", asst)
			}
			line = asst[i+len("</think>"):]
		}
		if !lines[line] {
			t.Fatalf("assistant %q does not end with an original line", asst)
		}
	}
	cfg.Teacher = modelTeacher(srv, "base", cache, teacher.Options{})
	sum, err = RunStyleRewrite(context.Background(), cfg)
	if err != nil || sum.Resumed != 3 || sum.Teacher.Requests != 0 {
		t.Fatalf("rerun %+v %v", sum, err)
	}
}

// TestStyleRewriteBatch exports the teacher's requests as an OpenAI Batch
// file, imports results written for them, and checks the rows: the
// neutral rewrite in the prompt, "<think>trace</think>" + the line as the
// target, and a trace over MaxTraceWords rejected.
func TestStyleRewriteBatch(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	cache := openCache(t, filepath.Join(out, FileCache))
	var batch bytes.Buffer
	cfg := StyleConfig{Common: Common{Out: out, Teacher: teacher.NewRecorder(&batch, cache), TeacherModel: "gpt-test", Seed: 1,
		Quality: QualityOptions{Language: "en"}}, Lines: styleTestLines()}
	sum, err := RunStyleRewrite(ctx, cfg)
	if err != nil || sum.Deferred != 3 || sum.Complete {
		t.Fatalf("export %+v %v", sum, err)
	}
	reqs := strings.Split(strings.TrimSpace(batch.String()), "\n")
	if len(reqs) != 3 {
		t.Fatalf("%d batch lines", len(reqs))
	}
	answers := map[string]string{
		"And God said, Let there be light: and there was light.": "Neutral: God ordered light to exist, and it did.\nReasoning: Solemn awe: the parataxis of And and the colon make creation a plain declared fact.",
		"Thou shalt not kill.": "Neutral: Do not murder.\nReasoning: A lawgiver's authority: the archaic thou and shalt turn advice into command.",
		"Jesus wept.":          "Neutral: Jesus cried.\nReasoning: " + strings.Repeat("grief ", MaxTraceWords+1),
	}
	var results bytes.Buffer
	for i, l := range reqs {
		var br struct {
			CustomID string `json:"custom_id"`
			Body     struct {
				Messages []chattemplate.Message `json:"messages"`
			} `json:"body"`
		}
		if err := json.Unmarshal([]byte(l), &br); err != nil {
			t.Fatal(err)
		}
		user := br.Body.Messages[1].Content
		var text string
		for line, a := range answers {
			if strings.Contains(user, "Line: "+line+"\n") {
				text = a
			}
		}
		if text == "" || !strings.Contains(user, "no particles, interjections") {
			t.Fatalf("request %s", user)
		}
		body := fmt.Sprintf(`{"id":"c%d","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`, i, text)
		fmt.Fprintf(&results, `{"id":"b%d","custom_id":%q,"response":{"status_code":200,"body":%s},"error":null}`+"\n", i, br.CustomID, body)
	}
	if st, err := teacher.ImportBatchResults(&results, "results.jsonl", cache); err != nil || st.Imported != 3 {
		t.Fatalf("import %+v %v", st, err)
	}
	cfg.Teacher = &teacher.CacheOnly{Cache: cache}
	sum, err = RunStyleRewrite(ctx, cfg)
	if err != nil || !sum.Complete || sum.Kept != 2 || sum.Rejections[ReasonLongTrace] != 1 {
		t.Fatalf("import run %+v %v", sum, err)
	}
	chat := readJSONL(t, filepath.Join(out, FileStyleChat))
	if len(chat) != 2 {
		t.Fatalf("%d chat rows", len(chat))
	}
	for _, r := range chat {
		msgs := r["messages"].([]any)
		user := msgs[1].(map[string]any)["content"].(string)
		asst := msgs[2].(map[string]any)["content"].(string)
		switch user {
		case "Rewrite in your own voice: Do not murder.":
			if asst != "<think>A lawgiver's authority: the archaic thou and shalt turn advice into command.</think>Thou shalt not kill." {
				t.Fatalf("assistant %q", asst)
			}
		case "Rewrite in your own voice: God ordered light to exist, and it did.":
			if !strings.HasSuffix(asst, "</think>And God said, Let there be light: and there was light.") {
				t.Fatalf("assistant %q", asst)
			}
		default:
			t.Fatalf("user %q", user)
		}
	}
}
