package sculpt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/eval/voices"
	"github.com/masque-ai/masque/train"
	"github.com/masque-ai/masque/train/sft"
)

// Data is the tokenized data of a sculpt run: conversations whose
// assistant tokens carry the loss (train.Sequence targets), for learning
// (Train) and for the held-out loss (Valid).
type Data struct {
	Train, Valid []train.Sequence
	// Source describes where the rows came from (for run.json).
	Source string
	// Rows counts the usable rows; Skipped lists the rows left out.
	Rows    int
	Skipped []string
	// Tokens and Targets count the training tokens and the trained ones.
	Tokens, Targets int
}

// DataOptions tune the loaders.
type DataOptions struct {
	// MaxLen is the longest sequence (≤ 0: the model's context); longer
	// rows are cut (their first MaxLen tokens are used).
	MaxLen int
	// EvalFraction of the rows of a chat file is held out for the
	// validation loss when no separate file is given (default 0.05; < 0:
	// none).
	EvalFraction float64
	// Seed picks the held-out rows.
	Seed uint64
	// MaxRows, if > 0, uses only the first MaxRows training rows (only
	// they are encoded); MaxValidRows, if > 0, only the first MaxValidRows
	// held-out rows of a voices corpus split.
	MaxRows, MaxValidRows int
}

func loadOpts(ck *checkpoint.Checkpoint, o DataOptions) sft.Options {
	maxLen := ck.Model.Config.MaxSeq
	if o.MaxLen > 0 && (maxLen <= 0 || o.MaxLen < maxLen) {
		maxLen = o.MaxLen
	}
	return sft.Options{MaxLen: maxLen, Truncate: true, OnBadRow: chatdata.SkipBadRows, Seed: o.Seed}
}

func encoder(ck *checkpoint.Checkpoint) (*sft.Encoder, error) {
	tok, err := ck.NeedTokenizer()
	if err != nil {
		return nil, fmt.Errorf("sculpt: the model's tokenizer is needed to encode the data: %w", err)
	}
	return sft.NewEncoder(ck.Template, tok, ck.TemplateConfig, ck.HasTemplate), nil
}

// loadFile encodes one chat JSONL file; a file without a single usable row
// (none with an assistant turn, say) is an error naming it and the first
// problem.
func loadFile(path string, enc *sft.Encoder, so sft.Options) (*sft.Dataset, error) {
	var first *chatdata.Problem
	so.Warn = func(p chatdata.Problem) {
		if first == nil {
			first = &p
		}
	}
	ds, err := sft.Load(path, enc, so)
	if err != nil {
		if first != nil {
			return nil, fmt.Errorf("sculpt: %s: no conversation with assistant tokens to learn from (first problem: %v)", path, first)
		}
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	return ds, nil
}

func problems(ps []chatdata.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return out
}

func (d *Data) count() {
	d.Tokens, d.Targets = 0, 0
	for _, s := range d.Train {
		d.Tokens += len(s.Tokens)
		for _, t := range s.Targets {
			if t != train.IgnoreIndex {
				d.Targets++
			}
		}
	}
}

// NewData wraps sequences tokenized elsewhere (train.Sequence targets on
// the assistant tokens) as a sculpt run's data; source describes them for
// run.json.
func NewData(trainSeqs, valid []train.Sequence, source string) *Data {
	d := &Data{Train: trainSeqs, Valid: valid, Source: source, Rows: len(trainSeqs) + len(valid)}
	d.count()
	return d
}

// LoadChat reads chat data (JSONL in any layout `masque finetune` reads:
// messages, system/question/answer, Alpaca). Validation rows come from
// evalPath when given, else o.EvalFraction of path is held out.
func LoadChat(ck *checkpoint.Checkpoint, path, evalPath string, o DataOptions) (*Data, error) {
	enc, err := encoder(ck)
	if err != nil {
		return nil, err
	}
	so := loadOpts(ck, o)
	frac := o.EvalFraction
	if frac == 0 {
		frac = 0.05
	}
	if frac > 0 && evalPath == "" {
		so.EvalFraction = frac
	}
	ds, err := loadFile(path, enc, so)
	if err != nil {
		return nil, err
	}
	d := &Data{Train: ds.Train, Valid: ds.Eval, Source: path, Rows: ds.Rows, Skipped: problems(ds.Skipped)}
	if evalPath != "" {
		so.EvalFraction = 0
		es, err := loadFile(evalPath, enc, so)
		if err != nil {
			return nil, err
		}
		d.Valid = es.Train
		d.Skipped = append(d.Skipped, problems(es.Skipped)...)
		d.Source += " (validation: " + evalPath + ")"
	}
	if o.MaxRows > 0 && len(d.Train) > o.MaxRows {
		d.Train = d.Train[:o.MaxRows]
	}
	d.count()
	return d, nil
}

// kitHoldout is the share of an evaluation kit's valid split held out.
const kitHoldout = 0.1

// LoadPersona reads one voice of a voices corpus (`masque corpus voices`):
// its train split is the training data, its valid split the held-out data.
// An evaluation kit (a corpus without train splits, such as the one built
// into builtin:voices: voices.DefaultCorpus) gives its valid split, a tenth
// of it (kitHoldout) held out.
func LoadPersona(ck *checkpoint.Checkpoint, corpusDir, persona string, o DataOptions) (*Data, error) {
	corp, err := voices.OpenCorpus(corpusDir)
	if err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	if _, ok := corp.Voice(persona); !ok {
		return nil, fmt.Errorf("sculpt: persona %q is not a voice of the corpus %s (its voices: %s)", persona, corpusDir, strings.Join(corp.Names(), ", "))
	}
	trainPath, validPath := corp.SplitPath(persona, voices.SplitTrain), corp.SplitPath(persona, voices.SplitValid)
	if _, err := os.Stat(validPath); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sculpt: the corpus %s has no valid split for persona %q (%s is missing); "+
			"sculpt learns on a voices corpus, as `masque corpus voices --out DIR` writes", corpusDir, persona, validPath)
	}
	enc, err := encoder(ck)
	if err != nil {
		return nil, err
	}
	so := loadOpts(ck, o)
	if _, err := os.Stat(trainPath); errors.Is(err, fs.ErrNotExist) {
		// An evaluation kit (such as the one built into builtin:voices) has
		// no train splits: learn on the valid split, a tenth of its rows
		// held out; the test split stays unseen for evaluation.
		so.EvalFraction, so.Seed = kitHoldout, o.Seed
		ds, err := loadFile(validPath, enc, so)
		if err != nil {
			return nil, err
		}
		d := &Data{Train: ds.Train, Valid: ds.Eval, Rows: ds.Rows, Skipped: problems(ds.Skipped),
			Source: fmt.Sprintf("voices evaluation kit %s, persona %s (no train split: valid split, a tenth held out)", corpusDir, persona)}
		if o.MaxRows > 0 && len(d.Train) > o.MaxRows {
			d.Train = d.Train[:o.MaxRows]
		}
		if o.MaxValidRows > 0 && len(d.Valid) > o.MaxValidRows {
			d.Valid = d.Valid[:o.MaxValidRows]
		}
		d.count()
		return d, nil
	}
	so.MaxRows = o.MaxRows
	tr, err := loadFile(trainPath, enc, so)
	if err != nil {
		return nil, err
	}
	d := &Data{Train: tr.Train, Source: fmt.Sprintf("voices corpus %s, persona %s (train split; valid split held out)", corpusDir, persona),
		Rows: tr.Rows, Skipped: problems(tr.Skipped)}
	vpath := validPath
	if empty, err := noRows(vpath); err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	} else if empty {
		// A voice with too few documents for a validation share (small
		// corpora): learning works, without a held-out loss.
		d.Source = fmt.Sprintf("voices corpus %s, persona %s (train split; its valid split is empty: no held-out loss)", corpusDir, persona)
	} else {
		so.MaxRows = o.MaxValidRows
		va, err := loadFile(vpath, enc, so)
		if err != nil {
			return nil, err
		}
		d.Valid = va.Train
		d.Skipped = append(d.Skipped, problems(va.Skipped)...)
	}
	if o.MaxRows > 0 && len(d.Train) > o.MaxRows {
		d.Train = d.Train[:o.MaxRows]
	}
	d.count()
	return d, nil
}

// noRows reports whether a JSONL file holds nothing but white space.
func noRows(path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return len(strings.TrimSpace(string(data))) == 0, nil
}

// LoadPooled reads the given voices of a corpus (all when names is empty)
// together: the pooled data of a global mask, or the generic calibration
// data of the baselines (every voice but the persona's). Each voice
// contributes at most perVoice training rows (≤ 0: all) and
// o.MaxValidRows held-out rows (≤ 0: all), taken from the start of its
// splits, so that the pool is balanced.
func LoadPooled(ck *checkpoint.Checkpoint, corpusDir string, names []string, perVoice int, o DataOptions) (*Data, error) {
	corp, err := voices.OpenCorpus(corpusDir)
	if err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	if len(names) == 0 {
		names = corp.Names()
	}
	d := &Data{Source: fmt.Sprintf("voices corpus %s, voices %s pooled", corpusDir, strings.Join(names, ","))}
	for _, n := range names {
		vd, err := LoadPersona(ck, corpusDir, n, DataOptions{MaxLen: o.MaxLen, MaxRows: perVoice, MaxValidRows: o.MaxValidRows})
		if err != nil {
			return nil, err
		}
		d.Train = append(d.Train, vd.Train...)
		d.Valid = append(d.Valid, vd.Valid...)
		d.Rows += len(vd.Train)
		d.Skipped = append(d.Skipped, vd.Skipped...)
	}
	d.count()
	return d, nil
}

// OtherVoices returns the corpus's voices except persona.
func OtherVoices(corpusDir, persona string) ([]string, error) {
	corp, err := voices.OpenCorpus(corpusDir)
	if err != nil {
		return nil, fmt.Errorf("sculpt: %w", err)
	}
	names := slices.DeleteFunc(corp.Names(), func(s string) bool { return s == persona })
	return names, nil
}

// DataSource says where a run's rows come from, as `masque sculpt` takes
// them: one voice of a voices corpus (Persona, with Corpus), or a chat file
// (Data, with EvalData held out; without it a share of Data, see
// DataOptions.EvalFraction). An empty Corpus is the evaluation kit built
// into builtin:voices (voices.DefaultCorpus).
type DataSource struct {
	Persona, Corpus string
	Data, EvalData  string
}

// ErrTwoSources is Load's error for a source that names both a persona and
// a data file.
var ErrTwoSources = errors.New("sculpt: a persona and a data file are two sources of data; give one")

// CorpusDir returns the voices corpus folder: Corpus, or the evaluation kit
// built into builtin:voices when Corpus is empty.
func (s DataSource) CorpusDir() (string, error) {
	if s.Corpus != "" {
		return s.Corpus, nil
	}
	return voices.DefaultCorpus()
}

// Load reads the rows s names (LoadPersona or LoadChat); nil, and no error,
// when it names none.
func (s DataSource) Load(ck *checkpoint.Checkpoint, o DataOptions) (*Data, error) {
	switch {
	case s.Persona != "" && s.Data != "":
		return nil, ErrTwoSources
	case s.Persona != "":
		dir, err := s.CorpusDir()
		if err != nil {
			return nil, err
		}
		return LoadPersona(ck, dir, s.Persona, o)
	case s.Data != "":
		return LoadChat(ck, s.Data, s.EvalData, o)
	}
	return nil, nil
}

// LoadGeneric reads the generic calibration data of the baselines for the
// persona of s: every other voice of the corpus, pooled (LoadPooled, at
// most perVoice training rows each), and its name for run.json.
func (s DataSource) LoadGeneric(ck *checkpoint.Checkpoint, perVoice int, o DataOptions) (*Data, string, error) {
	if s.Persona == "" {
		return nil, "", errors.New("sculpt: generic calibration data needs a persona (the corpus's other voices are the generic data)")
	}
	dir, err := s.CorpusDir()
	if err != nil {
		return nil, "", err
	}
	others, err := OtherVoices(dir, s.Persona)
	if err != nil {
		return nil, "", err
	}
	d, err := LoadPooled(ck, dir, others, perVoice, o)
	return d, "generic (voices other than " + s.Persona + ")", err
}

// seqHash identifies a list of sequences (for checkpoint fingerprints).
func seqHash(seqs []train.Sequence) string {
	h := sha256.New()
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(len(seqs)))
	for _, s := range seqs {
		put(uint64(len(s.Tokens)))
		for i, t := range s.Tokens {
			put(uint64(t)<<32 | uint64(uint32(s.Targets[i])))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// samplesOf returns the token lists of up to n sequences (calibration
// samples for statistics), spread evenly over seqs.
func samplesOf(seqs []train.Sequence, n int) [][]int {
	if n <= 0 || n > len(seqs) {
		n = len(seqs)
	}
	out := make([][]int, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, seqs[i*len(seqs)/n].Tokens)
	}
	return out
}
