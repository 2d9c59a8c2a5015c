package cli

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/masque-ai/masque/hub"
)

// humanBytes writes a byte count in decimal units, as the hub shows sizes.
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTP"[i-1])
}

func (e *env) pullCmd() *cobra.Command {
	st := &pullRun{}
	c := &cobra.Command{
		Use:   "pull ORG/NAME[@REVISION][:QUANT] [FILE...]",
		Short: "Download a model from the Hugging Face hub into the shared cache",
		Long: `Download a model from the Hugging Face hub (or $HF_ENDPOINT, a mirror) into
the cache huggingface_hub uses ($HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub), so files that transformers, vLLM or
huggingface-cli already downloaded are reused and theirs find ours. Every
command's --model then accepts ORG/NAME (or ORG/NAME@REVISION, ORG/NAME:QUANT).

What is fetched: the whole revision, except other frameworks' copies of the
weights (.bin, .pt, ONNX, …) and GGUF conversions when the repository holds
safetensors (--all fetches those too). A GGUF repository with several files
needs a quantisation tag (ORG/NAME:Q4_K_M chooses the GGUF files of that
quantisation), file names or --include patterns.

Interrupted downloads are resumed (the .incomplete files in the cache and
HTTP range requests); every file is checked against the hub's sha256 (LFS
files) or git hash, and a corrupt file never enters the cache. Gated and
private models need a token: $HF_TOKEN, or the file huggingface-cli login
writes ($HF_HOME/token). The path that opens the model is printed on stdout.
A progress bar shows on a terminal (not with $HF_HUB_DISABLE_PROGRESS_BARS).
With $HF_HUB_OFFLINE set, the hub is not contacted: a model already in the
cache is reported, any other is an error.`,
		Example: `  masque pull Qwen/Qwen2.5-0.5B-Instruct
  masque pull HuggingFaceTB/SmolLM2-135M-Instruct --revision main --include '*.json' --include '*.safetensors'
  masque pull bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M
  masque pull Qwen/Qwen2.5-0.5B-Instruct-GGUF qwen2.5-0.5b-instruct-q5_k_m.gguf
  masque generate --model Qwen/Qwen2.5-0.5B-Instruct --prompt "Hello"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return e.runPull(cmd, args, st) },
	}
	fl := c.Flags()
	fl.StringVar(&st.revision, "revision", "", "branch, tag or commit to fetch (default main; same as ORG/NAME@REVISION)")
	fl.StringArrayVar(&st.cfg.Include, "include", nil, "fetch only files matching this pattern ('*' crosses '/'; 'dir/' is a folder); repeatable")
	fl.StringArrayVar(&st.cfg.Exclude, "exclude", nil, "leave out files matching this pattern; repeatable")
	fl.BoolVar(&st.cfg.All, "all", false, "fetch every file of the revision, other frameworks' weights included")
	fl.StringVar(&st.cfg.Cache, "cache", "", "cache folder (default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)")
	fl.IntVar(&st.cfg.Concurrency, "concurrency", 4, "files downloaded at once")
	fl.BoolVarP(&st.quiet, "quiet", "q", false, "no progress bar and no summary (only the path on stdout)")
	fl.BoolVar(&st.asJSON, "json", false, "print the result as JSON")
	return c
}

// pullRun holds the flags of pullCmd.
type pullRun struct {
	cfg           hub.Config
	revision      string
	quiet, asJSON bool
}

func (e *env) runPull(cmd *cobra.Command, args []string, st *pullRun) error {
	ref, err := hub.ParseRef(args[0])
	if err != nil {
		return usageError{err}
	}
	if st.revision != "" {
		if ref.Revision != "" && ref.Revision != st.revision {
			return usagef("%s names revision %s and --revision says %s", args[0], ref.Revision, st.revision)
		}
		ref.Revision = st.revision
	}
	st.cfg.Model, st.cfg.Files = ref, args[1:]
	bar := e.terminalMeter(ref.Repo, "bytes", st.quiet || os.Getenv("HF_HUB_DISABLE_PROGRESS_BARS") != "")
	if !bar.quiet {
		st.cfg.Progress = func(p hub.Progress) {
			bar.describe(fmt.Sprintf("%d/%d %s", p.FilesDone, p.Files, shorten(p.File, 32)))
			bar.set(p.Bytes, p.Total)
		}
	}
	res, err := hub.Run(cmd.Context(), st.cfg)
	bar.end()
	if err != nil {
		return err
	}
	if st.asJSON {
		return writeJSON(e.stdout, res)
	}
	if !st.quiet {
		files := "files"
		if len(res.Files) == 1 {
			files = "file"
		}
		fmt.Fprintf(e.stderr, "%s@%s (commit %s): %d %s, %s (%s downloaded, %s already in the cache)\n",
			res.Repo, res.Revision, res.Commit[:min(12, len(res.Commit))], len(res.Files), files, humanBytes(res.Size()),
			humanBytes(res.Downloaded), humanBytes(res.Cached))
		if len(res.Skipped) > 0 {
			fmt.Fprintf(e.stderr, "left out (--all fetches them): %s\n", strings.Join(res.Skipped, ", "))
		}
		if _, err := hub.Lookup(st.cfg.Cache, ref.String()); err != nil {
			fmt.Fprintf(e.stderr, "warning: --model %s will not open it: %v\n", ref, err)
		} else {
			fmt.Fprintf(e.stderr, "use it with --model %s\n", ref)
		}
	}
	fmt.Fprintln(e.stdout, res.Path)
	return nil
}

// shorten keeps the end of s within n characters.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n+1:]
}

func (e *env) listCmd() *cobra.Command {
	var cache string
	var asJSON bool
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the models in the Hugging Face cache",
		Long: `List the models in the Hugging Face cache (the one masque pull and
huggingface_hub share), one line per snapshot: the repository, its revision
(the branches and tags that point at it, else the commit), its size, its type
(HF: a model folder; GGUF: GGUF files, listed; files: anything else) and when
it last changed. Unfinished downloads are counted as partial.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := cache
			if dir == "" {
				dir = hub.CacheDir()
			}
			models, err := hub.List(dir)
			if err != nil {
				return err
			}
			if asJSON {
				if models == nil {
					models = []hub.CachedModel{}
				}
				return writeJSON(e.stdout, models)
			}
			if len(models) == 0 {
				fmt.Fprintf(e.stderr, "no models in %s (masque pull ORG/NAME fetches one)\n", dir)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MODEL\tREVISION\tSIZE\tTYPE\tMODIFIED")
			var total int64
			for _, m := range models {
				total += m.Size + m.Partial
				mod := m.Modified.Local().Format("2006-01-02 15:04")
				if len(m.Snapshots) == 0 {
					fmt.Fprintf(tw, "%s\t-\t%s\tpartial\t%s\n", m.Repo, humanBytes(m.Partial), mod)
					continue
				}
				for _, s := range m.Snapshots {
					rev := s.Commit[:min(12, len(s.Commit))]
					if len(s.Refs) > 0 {
						rev = strings.Join(s.Refs, ",")
					}
					kind := map[string]string{"hf": "HF", "gguf": "GGUF"}[s.Kind]
					if kind == "" {
						kind = s.Kind
					}
					if s.Kind == "gguf" {
						kind += " " + strings.Join(s.GGUF, ",")
					}
					if len(s.Missing) > 0 {
						kind += fmt.Sprintf(" (incomplete: %d files missing)", len(s.Missing))
					}
					if m.Partial > 0 {
						kind += fmt.Sprintf(" (+%s partial)", humanBytes(m.Partial))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Repo, rev, humanBytes(s.Size), kind, mod)
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			noun := "models"
			if len(models) == 1 {
				noun = "model"
			}
			fmt.Fprintf(e.stderr, "%d %s, %s on disk in %s\n", len(models), noun, humanBytes(total), dir)
			return nil
		},
	}
	c.Flags().StringVar(&cache, "cache", "", "cache folder (default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)")
	c.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return c
}

func (e *env) rmCmd() *cobra.Command {
	var cache string
	var dryRun bool
	c := &cobra.Command{
		Use:   "rm ORG/NAME[@REVISION]...",
		Short: "Remove models from the Hugging Face cache",
		Long: `Remove models from the Hugging Face cache: ORG/NAME removes the repository
with all its snapshots (and unfinished downloads); ORG/NAME@REVISION removes
that one snapshot, the branches and tags pointing at it and the files no other
snapshot uses. This also removes what Python tools downloaded, since the cache
is shared.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if _, err := hub.ParseRef(a); err != nil {
					return usageError{err}
				}
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, a := range args {
				rm, err := hub.Remove(cache, a, dryRun)
				if err != nil {
					return err
				}
				what := rm.Repo
				if !rm.Whole {
					short := make([]string, len(rm.Snapshots))
					for i, s := range rm.Snapshots {
						short[i] = s[:min(12, len(s))]
					}
					what += " snapshot " + strings.Join(short, ",")
				}
				refs := append([]string(nil), rm.Refs...)
				sort.Strings(refs)
				extra := ""
				if len(refs) > 0 {
					extra = " (" + strings.Join(refs, ", ") + ")"
				}
				fmt.Fprintf(e.stdout, "%s %s%s: %s\n", verb, what, extra, humanBytes(rm.Bytes))
			}
			return nil
		},
	}
	c.Flags().StringVar(&cache, "cache", "", "cache folder (default $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub)")
	c.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "say what would be removed, remove nothing")
	return c
}
