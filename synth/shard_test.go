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

// TestShardsMerge: the union of n shards, joined by Merge, equals the
// unsharded run, file for file; shards do not overlap.
func TestShardsMerge(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := newServer(t, newFakeHandler())
	chars, ins := testCharacters(7), testInstructions(30)
	personas := make([]Persona, 12)
	for i := range personas {
		personas[i] = Persona{Text: fmt.Sprintf("A lighthouse keeper number %d.", i), File: "p.txt", Line: i + 1}
	}
	run := func(out string, shard Shard) {
		t.Helper()
		os.MkdirAll(out, 0o755)
		com := Common{Out: out, Shard: shard, Teacher: httpTeacher(srv, openCache(t, filepath.Join(out, FileCache)), teacher.Options{}),
			TeacherModel: "fake", Seed: 2, MaxTokens: 64, Temperature: 0.7, DedupeThreshold: 0.5, Quality: QualityOptions{Language: "any"}}
		if sum, err := RunProfiles(ctx, ProfilesConfig{Common: com, Personas: personas}); err != nil || !sum.Complete {
			t.Fatal(sum, err)
		}
		sum, err := RunAnswers(ctx, AnswersConfig{Common: com, Strategy: StrategyR, Characters: chars, Instructions: ins})
		if err != nil || !sum.Complete {
			t.Fatal(sum, err)
		}
		if shard.Whole() != (sum.Final != nil) {
			t.Fatalf("shard %v: deliverables built: %v", shard, sum.Final != nil)
		}
	}
	whole := filepath.Join(dir, "whole")
	run(whole, Shard{})
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n, "shards"), func(t *testing.T) {
			var dirs []string
			seen := map[string]int{}
			total := 0
			for i := range n {
				d := filepath.Join(dir, fmt.Sprintf("n%d-shard%d", n, i))
				run(d, Shard{i, n})
				dirs = append(dirs, d)
				ids := logIDs(t, StageFile(d, StageAnswers, "log"))
				if len(ids) == 0 {
					t.Fatalf("shard %d/%d is empty", i, n)
				}
				for _, id := range ids {
					if prev, ok := seen[id]; ok {
						t.Fatalf("row %s in shards %d and %d", id, prev, i)
					}
					seen[id] = i
					total++
				}
			}
			if want := len(logIDs(t, StageFile(whole, StageAnswers, "log"))); total != want {
				t.Fatalf("shards hold %d rows, the whole run %d", total, want)
			}
			merged := filepath.Join(dir, fmt.Sprintf("merged%d", n))
			// Shards in any order.
			res, err := Merge(MergeOptions{Out: merged, Dirs: append(dirs[1:], dirs[0]), DedupeThreshold: -1})
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 2 || !res[0].Complete || res[0].Shards != n || res[0].Final.NearDuplicates == 0 {
				t.Fatalf("merge %+v", res)
			}
			for _, f := range []string{FileCharacters, FileDialogue, FileDialogueChat} {
				a, b := mustRead(t, filepath.Join(merged, f)), mustRead(t, filepath.Join(whole, f))
				if a != b || a == "" {
					t.Fatalf("%s: merged shards differ from the unsharded run", f)
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		d0, d1 := filepath.Join(dir, "n2-shard0"), filepath.Join(dir, "n2-shard1")
		other := filepath.Join(dir, "other-seed")
		os.MkdirAll(other, 0o755)
		com := Common{Out: other, Shard: Shard{1, 2}, Teacher: httpTeacher(srv, nil, teacher.Options{}), TeacherModel: "fake", Seed: 3,
			MaxTokens: 64, Temperature: 0.7, Quality: QualityOptions{Language: "any"}}
		if _, err := RunAnswers(ctx, AnswersConfig{Common: com, Strategy: StrategyR, Characters: chars, Instructions: ins}); err != nil {
			t.Fatal(err)
		}
		// An incomplete shard: drop its last row.
		partial := filepath.Join(dir, "partial")
		copyDir(t, d1, partial)
		lp := StageFile(partial, StageAnswers, "log")
		data := []byte(mustRead(t, lp))
		data = data[:bytes.LastIndexByte(data[:len(data)-1], '\n')+1]
		os.WriteFile(lp, data, 0o644)
		// A row in the wrong shard.
		wrong := filepath.Join(dir, "wrong")
		copyDir(t, d1, wrong)
		first := strings.SplitAfter(mustRead(t, StageFile(d0, StageAnswers, "log")), "\n")[0]
		f, _ := os.OpenFile(StageFile(wrong, StageAnswers, "log"), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(first)
		f.Close()
		tests := []struct {
			name string
			dirs []string
			want string
		}{
			{"missing shard", []string{d0}, "missing shards 1/2"},
			{"same shard twice", []string{d0, d0, d1}, "shard 0/2 is in both"},
			{"other settings", []string{d0, other}, "different settings"},
			{"incomplete", []string{d0, partial}, "incomplete shards"},
			{"row in the wrong shard", []string{d0, wrong}, "belongs to shard 0/2"},
			{"nothing to merge", []string{t.TempDir()}, "no synth run"},
		}
		for _, tc := range tests {
			_, err := Merge(MergeOptions{Out: filepath.Join(t.TempDir(), "m"), Dirs: tc.dirs, DedupeThreshold: -1})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
			}
		}
		res, err := Merge(MergeOptions{Out: filepath.Join(t.TempDir(), "m"), Dirs: []string{d0, partial}, AllowIncomplete: true, DedupeThreshold: -1})
		if err != nil || res[0].Complete {
			t.Fatalf("allow incomplete: %+v %v", res, err)
		}
	})
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	os.MkdirAll(to, 0o755)
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(from, e.Name()))
		os.WriteFile(filepath.Join(to, e.Name()), b, 0o644)
	}
}

// TestBatchExportImport runs the profiles stage through the OpenAI Batch
// file formats: export writes one request per row, the results (made here
// by the fake model) are imported into the cache, and the rerun writes the
// rows without calling any server.
func TestBatchExportImport(t *testing.T) {
	ctx := context.Background()
	out := t.TempDir()
	personas := []Persona{{Text: "A baker."}, {Text: "A pilot."}, {Text: "A monk."}, {Text: "A baker."}}
	cache := openCache(t, filepath.Join(out, FileCache))
	var batch bytes.Buffer
	rec := teacher.NewRecorder(&batch, cache)
	cfg := ProfilesConfig{Common: Common{Out: out, Teacher: rec, TeacherModel: "gpt-test", Seed: 1, Temperature: 0.7, Quality: QualityOptions{Language: "en"}}, Personas: personas}
	sum, err := RunProfiles(ctx, cfg)
	if err != nil || sum.Deferred != 3 || sum.Kept != 0 || sum.Complete {
		t.Fatalf("export %+v %v", sum, err)
	}
	lines := strings.Split(strings.TrimSpace(batch.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d batch lines", len(lines))
	}
	var results bytes.Buffer
	for i, l := range lines {
		var br struct {
			CustomID string         `json:"custom_id"`
			Method   string         `json:"method"`
			URL      string         `json:"url"`
			Body     map[string]any `json:"body"`
		}
		if err := json.Unmarshal([]byte(l), &br); err != nil {
			t.Fatal(err)
		}
		if br.Method != "POST" || br.URL != "/v1/chat/completions" || br.Body["model"] != "gpt-test" || len(br.CustomID) != 32 {
			t.Fatalf("batch line %s", l)
		}
		var req teacher.Request
		req.Model = "gpt-test"
		for _, m := range br.Body["messages"].([]any) {
			mm := m.(map[string]any)
			req.Messages = append(req.Messages, chattemplate.Message{Role: mm["role"].(string), Content: mm["content"].(string)})
		}
		resp, _ := fakeGen(ctx, req, nil)
		body := fmt.Sprintf(`{"id":"c%d","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}]}`, i, resp.Text)
		fmt.Fprintf(&results, `{"id":"batch_req_%d","custom_id":%q,"response":{"status_code":200,"request_id":"r","body":%s},"error":null}`+"\n", i, br.CustomID, body)
	}
	st, err := teacher.ImportBatchResults(&results, "results.jsonl", cache)
	if err != nil || st.Imported != 3 {
		t.Fatalf("import %+v %v", st, err)
	}
	cfg.Teacher = &teacher.CacheOnly{Cache: cache}
	sum, err = RunProfiles(ctx, cfg)
	if err != nil || !sum.Complete || sum.Kept != 3 {
		t.Fatalf("import run %+v %v", sum, err)
	}
	if rows := readJSONL(t, filepath.Join(out, FileCharacters)); len(rows) != 3 || keysOf(rows[0]) != "character,character_id,persona" {
		t.Fatalf("rows %v", rows)
	}
}
