package synth

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/synth/teacher"
)

// testCharacters are ready-made characters for answer runs.
func testCharacters(n int) []Character {
	var out []Character
	for i := range n {
		p := fmt.Sprintf("A weathered sailor number %d who tells tall tales.", i)
		out = append(out, Character{ID: CharacterID(p), Persona: p, Profile: fmt.Sprintf("Name: Sailor %d\nAge: %d\nGender: Male\nRace: Human\nBirthplace: Hull\nAppearance: Salt-grey beard.\nGeneral experience: Forty years at sea.\nPersonality: Boastful, kind.", i, 40+i)})
	}
	return out
}

func testInstructions(n int) []Instruction {
	var out []Instruction
	for i := range n {
		out = append(out, Instruction{Question: fmt.Sprintf("How do you tie knot number %d?", i), Reference: fmt.Sprintf("Loop the rope %d times and pull.", i), Source: "knots", File: "knots.jsonl", Line: i + 1})
	}
	return out
}

// faultScript decides, from a request body, how the server misbehaves on
// each attempt: a fixed script per request, chosen by its hash.
var faultScripts = [][]string{
	{},             // fine
	{"429"},        // rate limited once (Retry-After: 1)
	{"500", "500"}, // two server errors
	{"stall"},      // the stream stalls mid-way
	{"cut"},        // the stream is cut off mid-chunk
	{"500", "500", "500", "500", "500", "500"}, // never succeeds
}

func scriptOf(body []byte) int {
	// The script depends on the request without "stream".
	s := strings.Replace(string(body), `,"stream":true`, "", 1)
	return int(keyHash([]byte(s)) % uint64(len(faultScripts)))
}

// faultInjector counts attempts per request and plays its script.
type faultInjector struct {
	mu       sync.Mutex
	attempts map[string]int
	off      bool
}

func (f *faultInjector) handle(w http.ResponseWriter, r *http.Request, body []byte) bool {
	f.mu.Lock()
	if f.off {
		f.mu.Unlock()
		return false
	}
	key := strings.Replace(string(body), `,"stream":true`, "", 1)
	n := f.attempts[key]
	f.attempts[key]++
	f.mu.Unlock()
	script := faultScripts[scriptOf(body)]
	if n >= len(script) {
		return false
	}
	switch script[n] {
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":{"message":"rate limited"}}`, http.StatusTooManyRequests)
	case "500":
		http.Error(w, `{"error":{"message":"internal"}}`, http.StatusInternalServerError)
	case "stall":
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Once \"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	case "cut":
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Once \"}}]}\n\ndata: {\"choices\":[{\"del")
		w.(http.Flusher).Flush()
		if c, _, err := w.(http.Hijacker).Hijack(); err == nil {
			c.Close()
		}
	}
	return true
}

// TestFaultInjection: a server that answers 429 (with Retry-After), 500s,
// stalls and cut-off streams. Every row completes or is reported failed
// with its reason; a rerun against a healthy server finishes the job; the
// result has no duplicate and no lost row and equals a clean run.
func TestFaultInjection(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	chars, ins := testCharacters(5), testInstructions(8)
	fi := &faultInjector{attempts: map[string]int{}}
	h := newFakeHandler()
	h.fault = fi.handle
	srv := newServer(t, h)
	out := filepath.Join(dir, "faulty")
	os.MkdirAll(out, 0o755)
	opts := teacher.Options{Concurrency: 4, MaxAttempts: 4, Timeout: 400 * time.Millisecond}
	com := Common{Out: out, TeacherModel: "fake", Seed: 9, MaxTokens: 64, Temperature: 0.7, DedupeThreshold: 0.85, Quality: QualityOptions{Language: "any"}}
	com.Teacher = httpTeacher(srv, openCache(t, filepath.Join(out, FileCache)), opts)
	cfg := AnswersConfig{Common: com, Strategy: StrategyR, Characters: chars, Instructions: ins, PerInstruction: 3}
	start := time.Now()
	sum, err := RunAnswers(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < time.Second {
		t.Errorf("run took %v: Retry-After: 1 was not honoured", time.Since(start))
	}
	if sum.Total != 24 || sum.Kept+sum.Failed != 24 || sum.Rejected != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Failed == 0 || sum.Failures[openaiclient.KindServer] != sum.Failed || sum.Complete {
		t.Fatalf("expected the always-failing rows to be reported: %+v", sum)
	}
	kept := logIDs(t, StageFile(out, StageAnswers, "log"))
	if len(kept) != sum.Kept || len(slices.Compact(slices.Sorted(slices.Values(kept)))) != len(kept) {
		t.Fatalf("log has %d rows (%d kept), or duplicates", len(kept), sum.Kept)
	}
	failures := readJSONL(t, StageFile(out, StageAnswers, "failures"))
	if len(failures) != sum.Failed {
		t.Fatalf("%d failure lines for %d failed rows", len(failures), sum.Failed)
	}
	for _, f := range failures {
		if f["kind"] != openaiclient.KindServer || !strings.Contains(f["error"].(string), "gave up after 4 attempts") {
			t.Fatalf("failure %v", f)
		}
		if slices.Contains(kept, f["id"].(string)) {
			t.Fatalf("row %v both failed and kept", f["id"])
		}
	}
	st := sum.Teacher
	if st.Errors[openaiclient.KindRateLimited] == 0 || st.Errors[openaiclient.KindTimeout] == 0 || st.Errors[openaiclient.KindTruncated] == 0 || st.Errors[openaiclient.KindServer] == 0 {
		t.Fatalf("not every fault kind was seen: %v", st.Errors)
	}
	if final := sum.Final; final == nil || final.Failed != sum.Failed {
		t.Fatalf("final %+v", sum.Final)
	}

	// The server heals; a rerun does only the failed rows.
	fi.mu.Lock()
	fi.off = true
	fi.mu.Unlock()
	calls := h.calls.Load()
	sum2, err := RunAnswers(ctx, cfg)
	if err != nil || !sum2.Complete || sum2.Kept != sum.Failed || sum2.Resumed != sum.Kept {
		t.Fatalf("rerun %+v %v", sum2, err)
	}
	if n := int(h.calls.Load() - calls); n != sum.Failed {
		t.Fatalf("rerun made %d requests for %d failed rows", n, sum.Failed)
	}
	if ids := logIDs(t, StageFile(out, StageAnswers, "log")); len(ids) != 24 || len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 24 {
		t.Fatalf("%d rows after the rerun", len(ids))
	}

	// A clean run makes the same output.
	clean := filepath.Join(dir, "clean")
	os.MkdirAll(clean, 0o755)
	ccfg := cfg
	ccfg.Out = clean
	ccfg.Teacher = httpTeacher(newServer(t, newFakeHandler()), openCache(t, filepath.Join(clean, FileCache)), teacher.Options{})
	if _, err := RunAnswers(ctx, ccfg); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{FileDialogue, FileDialogueChat} {
		if mustRead(t, filepath.Join(out, f)) != mustRead(t, filepath.Join(clean, f)) {
			t.Fatalf("%s differs from a clean run", f)
		}
	}
}

// TestQualityControls drops (or flags) profiles that break character,
// refuse, are empty, truncated, in the wrong language or malformed, and
// retries a malformed profile with a new seed.
func TestQualityControls(t *testing.T) {
	good := "Name: Ada Brook\nAge: 34\nGender: Female\nRace: Human\nBirthplace: Leeds\nAppearance: Tall.\nGeneral experience: Printer.\nPersonality: Wry and patient, she laughs at the world."
	var mu sync.Mutex
	calls := map[string]int{}
	fake := teacherFunc(func(ctx context.Context, req teacher.Request) (*teacher.Response, error) {
		user := req.Messages[1].Content
		mu.Lock()
		defer mu.Unlock()
		for _, kind := range []string{"good", "ai", "refuse", "french", "empty", "length", "story", "fixed"} {
			if strings.Contains(user, "persona "+kind+".") {
				calls[kind]++
				switch kind {
				case "good":
					return &teacher.Response{Text: good, FinishReason: "stop"}, nil
				case "ai":
					return &teacher.Response{Text: good + " As an AI language model I made her up.", FinishReason: "stop"}, nil
				case "refuse":
					return &teacher.Response{Text: "I'm sorry, but I can't help with creating this character.", FinishReason: "stop"}, nil
				case "french":
					return &teacher.Response{Text: "Name: Ada\nAge: 3\nGender: F\nRace: Humaine\nBirthplace: Paris\nAppearance: Elle est grande et très belle avec les yeux bleus.\nGeneral experience: Elle a travaillé dans une boulangerie pour les enfants.\nPersonality: Elle est gentille et elle aime le pain.", FinishReason: "stop"}, nil
				case "empty":
					return &teacher.Response{Text: "  ", FinishReason: "stop"}, nil
				case "length":
					return &teacher.Response{Text: good, FinishReason: "length"}, nil
				case "story":
					return &teacher.Response{Text: "Once upon a time there was a little dog who liked to run in the park.", FinishReason: "stop"}, nil
				case "fixed":
					if calls[kind] == 1 {
						return &teacher.Response{Text: "Here is a character for you.", FinishReason: "stop"}, nil
					}
					return &teacher.Response{Text: "Sure! Character profile:\n" + good, FinishReason: "stop"}, nil
				}
			}
		}
		return nil, fmt.Errorf("unexpected request %q", user)
	})
	kinds := []string{"good", "ai", "refuse", "french", "empty", "length", "story", "fixed"}
	var personas []Persona
	for _, k := range kinds {
		personas = append(personas, Persona{Text: "The persona " + k + ".", File: "p.txt", Line: 1})
	}
	wantReasons := map[string][]string{
		"ai": {ReasonBreaksCharacter}, "refuse": {ReasonMalformedProfile, ReasonRefusal}, "french": {ReasonWrongLanguage},
		"empty": {ReasonEmpty, ReasonMalformedProfile}, "length": {ReasonTruncated}, "story": {ReasonMalformedProfile},
	}
	for _, flag := range []bool{false, true} {
		t.Run(fmt.Sprintf("flag=%v", flag), func(t *testing.T) {
			clear(calls)
			out := t.TempDir()
			sum, err := RunProfiles(context.Background(), ProfilesConfig{Common: Common{Out: out, Teacher: fake, TeacherModel: "fake",
				Temperature: 0.5, FlagOnly: flag, Quality: QualityOptions{Language: "en"}}, Personas: personas, Retries: 1})
			if err != nil {
				t.Fatal(err)
			}
			if calls["fixed"] != 2 || calls["good"] != 1 || calls["story"] != 2 {
				t.Fatalf("calls %v: a malformed profile must be retried once, a good one not", calls)
			}
			got := map[string][]string{}
			if flag {
				for _, r := range readJSONL(t, filepath.Join(out, FileCharacters)) {
					if fl, ok := r["flags"]; ok {
						for _, x := range fl.([]any) {
							k := strings.TrimSuffix(strings.TrimPrefix(r["persona"].(string), "The persona "), ".")
							got[k] = append(got[k], x.(string))
						}
					}
				}
				if sum.Kept != 8 {
					t.Fatalf("flag mode kept %d", sum.Kept)
				}
			} else {
				for _, r := range readJSONL(t, StageFile(out, StageProfiles, "rejected")) {
					var persona string
					if row, ok := r["row"].(map[string]any); ok {
						persona = row["persona"].(string)
					}
					k := strings.TrimSuffix(strings.TrimPrefix(persona, "The persona "), ".")
					for _, x := range r["reasons"].([]any) {
						got[k] = append(got[k], x.(string))
					}
				}
				chars := readJSONL(t, filepath.Join(out, FileCharacters))
				if len(chars) != 2 || sum.Kept != 2 || sum.Rejected != 6 {
					t.Fatalf("kept %d rows, summary %+v", len(chars), sum)
				}
				for _, c := range chars {
					if !strings.HasPrefix(c["character"].(string), "Name: Ada Brook\n") {
						t.Fatalf("profile not normalized: %q", c["character"])
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantReasons) {
				t.Fatalf("reasons %v, want %v", got, wantReasons)
			}
			html := mustRead(t, StageFile(out, StageProfiles, "report"))
			for _, s := range []string{"<svg", ReasonBreaksCharacter, ReasonWrongLanguage, "Top profile attributes", "female"} {
				if !strings.Contains(html, s) {
					t.Fatalf("report lacks %q", s)
				}
			}
		})
	}
}

// TestFatalStops: bad credentials stop the run with an error instead of
// failing every row one by one.
func TestFatalStops(t *testing.T) {
	h := newFakeHandler()
	h.fault = func(w http.ResponseWriter, r *http.Request, body []byte) bool {
		http.Error(w, `{"error":{"message":"invalid api key"}}`, http.StatusUnauthorized)
		return true
	}
	srv := newServer(t, h)
	out := t.TempDir()
	com := Common{Out: out, Teacher: httpTeacher(srv, nil, teacher.Options{Concurrency: 2}), TeacherModel: "fake", Quality: QualityOptions{Language: "any"}}
	sum, err := RunAnswers(context.Background(), AnswersConfig{Common: com, Strategy: StrategyG, Characters: testCharacters(3), Instructions: testInstructions(50)})
	if err == nil || openaiclient.ErrorKind(err) != openaiclient.KindAuth || !strings.Contains(err.Error(), "invalid api key") {
		t.Fatalf("err %v", err)
	}
	if n := h.calls.Load(); n > 10 {
		t.Fatalf("%d requests after a fatal error", n)
	}
	if sum == nil || sum.Complete || sum.Kept != 0 {
		t.Fatalf("summary %+v", sum)
	}
}
