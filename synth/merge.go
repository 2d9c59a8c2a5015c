package synth

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/masque-ai/masque/internal/atomicfile"
)

// MergeOptions configure Merge.
type MergeOptions struct {
	// Out is the folder the merged job is written to (not one of Dirs).
	Out string
	// Dirs are the shard output folders, one per shard, in any order.
	Dirs []string
	// AllowIncomplete merges shards that still have rows to do (the merged
	// job is then marked incomplete).
	AllowIncomplete bool
	// DedupeThreshold overrides the threshold recorded in the shards'
	// manifests (< 0: use the recorded one).
	DedupeThreshold float64
}

// MergedStage describes one merged stage.
type MergedStage struct {
	Stage string `json:"stage"` // the stage merged
	// Shards is the number of shards joined.
	Shards int `json:"shards"`
	// Total rows of the job, Kept and Rejected rows joined.
	Total    int         `json:"total"`
	Kept     int         `json:"kept"`            // rows in the joined log
	Rejected int         `json:"rejected"`        // rows in the joined rejected file
	Complete bool        `json:"complete"`        // every row of the job is done
	Final    *FinalStats `json:"final,omitempty"` // the deliverables built
}

// Merge joins the shards of sharded runs (--shard i/n) into one folder and
// verifies them: every stage found must come from the same settings
// (fingerprint) in all folders, the folders must hold shards 0..n-1 of n
// exactly once, every row must belong to the shard that holds it (so no
// row is in two shards), and every shard must be complete (unless
// AllowIncomplete). The logs are joined (atomically written) and the
// deliverables built as for an unsharded run, so the merged output equals
// what one unsharded run makes.
func Merge(o MergeOptions) ([]MergedStage, error) {
	if len(o.Dirs) == 0 {
		return nil, errors.New("no shard folders to merge")
	}
	outAbs, _ := filepath.Abs(o.Out)
	for _, d := range o.Dirs {
		if a, _ := filepath.Abs(d); a == outAbs {
			return nil, fmt.Errorf("the merge output %s is one of the shard folders", o.Out)
		}
	}
	stages := map[string]bool{}
	for _, d := range o.Dirs {
		ms, err := filepath.Glob(filepath.Join(d, "*.manifest.json"))
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			stages[strings.TrimSuffix(filepath.Base(m), ".manifest.json")] = true
		}
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no synth run found in %s (no *.manifest.json)", strings.Join(o.Dirs, ", "))
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	var out []MergedStage
	for _, stage := range slices.Sorted(maps.Keys(stages)) {
		ms, err := mergeStage(o, stage)
		if err != nil {
			return out, fmt.Errorf("merging %s: %w", stage, err)
		}
		out = append(out, *ms)
	}
	return out, nil
}

func mergeStage(o MergeOptions, stage string) (*MergedStage, error) {
	if old, err := ReadManifest(o.Out, stage); err == nil && old.Extra["merged"] != "true" {
		return nil, fmt.Errorf("%s already holds a %s run that is not a merge: merge into another folder", o.Out, stage)
	}
	mans := make([]*Manifest, len(o.Dirs))
	shards := make([]Shard, len(o.Dirs))
	var n int
	for i, d := range o.Dirs {
		m, err := ReadManifest(d, stage)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s has no %s run", d, stage)
			}
			return nil, err
		}
		sh, err := ParseShard(m.Shard)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", StageFile(d, stage, "manifest"), err)
		}
		if i == 0 {
			n = sh.Count
		} else if m.Fingerprint != mans[0].Fingerprint {
			return nil, fmt.Errorf("%s and %s were made with different settings", o.Dirs[0], d)
		} else if sh.Count != n {
			return nil, fmt.Errorf("%s is shard %s but %s is shard %s", d, m.Shard, o.Dirs[0], mans[0].Shard)
		}
		mans[i], shards[i] = m, sh
	}
	have := make([]string, n)
	for i, sh := range shards {
		if have[sh.Index] != "" {
			return nil, fmt.Errorf("shard %s is in both %s and %s", sh, have[sh.Index], o.Dirs[i])
		}
		have[sh.Index] = o.Dirs[i]
	}
	var missing []string
	for i, d := range have {
		if d == "" {
			missing = append(missing, fmt.Sprintf("%d/%d", i, n))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing shards %s", strings.Join(missing, ", "))
	}
	res := &MergedStage{Stage: stage, Shards: n, Complete: true}
	owner := map[string]int{}
	doneIn := make([]int, len(o.Dirs))
	// join copies one kind of file of every shard into the merged folder,
	// checking each row's shard and that no row is in two shards.
	join := func(kind string, check bool) (int, error) {
		path := StageFile(o.Out, stage, kind)
		rows := 0
		err := atomicfile.WriteFile(path, func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 1<<16)
			for i, d := range o.Dirs {
				sh := shards[i]
				probs, err := ReadLog(StageFile(d, stage, kind), func(id string, raw []byte) error {
					if check {
						if j := ShardOf(id, n); j != sh.Index {
							return fmt.Errorf("row %s in shard %s (%s) belongs to shard %d/%d", id, sh, d, j, n)
						}
						if prev, ok := owner[id]; ok {
							return fmt.Errorf("row %s is in both shard %s and %s", id, shards[prev], sh)
						}
						owner[id] = i
						doneIn[i]++
					}
					rows++
					bw.Write(raw)
					return bw.WriteByte('\n')
				})
				for _, p := range probs {
					if !strings.Contains(p.Msg, "torn last line") || kind != "failures" {
						return fmt.Errorf("shard %s: %v", sh, p)
					}
				}
				if err != nil {
					return err
				}
			}
			return bw.Flush()
		})
		return rows, err
	}
	var err error
	if res.Kept, err = join("log", true); err != nil {
		return nil, err
	}
	if res.Rejected, err = join("rejected", true); err != nil {
		return nil, err
	}
	if _, err = join("failures", false); err != nil {
		return nil, err
	}
	var incomplete []string
	for i, m := range mans {
		res.Total += m.Total
		done := doneIn[i]
		if !m.Complete || done != m.Total {
			incomplete = append(incomplete, fmt.Sprintf("%s (%s: %d of %d rows done)", shards[i], o.Dirs[i], done, m.Total))
		}
	}
	if len(incomplete) > 0 {
		res.Complete = false
		if !o.AllowIncomplete {
			return nil, fmt.Errorf("incomplete shards: %s; rerun them (or pass --allow-incomplete)", strings.Join(incomplete, "; "))
		}
	}
	extra := map[string]string{"merged": "true", "merged_from": strings.Join(o.Dirs, ",")}
	for k, v := range mans[0].Extra {
		if _, ok := extra[k]; !ok {
			extra[k] = v
		}
	}
	th := o.DedupeThreshold
	if th < 0 {
		th, _ = strconv.ParseFloat(mans[0].Extra["dedupe"], 64)
	}
	extra["dedupe"] = fmt.Sprint(th)
	man := Manifest{Stage: stage, Settings: mans[0].Settings, Fingerprint: mans[0].Fingerprint, Extra: extra,
		Shard: "0/1", Total: res.Total, Done: res.Kept + res.Rejected, Complete: res.Complete, Updated: time.Now().UTC()}
	if err := writeJSONFile(StageFile(o.Out, stage, "manifest"), man); err != nil {
		return nil, err
	}
	fs, err := Finalize(o.Out, stage, FinalizeOptions{DedupeThreshold: th, FlagOnly: mans[0].Settings["flag_only"] == "true"})
	if err != nil {
		return nil, err
	}
	res.Final = fs
	return res, nil
}
