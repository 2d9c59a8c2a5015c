// Package bpetrain trains byte-level BPE tokenizers (GPT-2 / Llama 3 style) and writes
// them as Hugging Face tokenizer.json and tokenizer_config.json (with a ChatML chat
// template), which the tokenizer package, transformers and transformers.js load.
//
// Training pre-tokenizes the text with the chosen split regex (the same matcher the
// tokenizer package encodes with), counts the distinct pre-tokens, and merges the most
// frequent adjacent pair of tokens, counted over all pre-tokens, until the vocabulary
// is full. The vocabulary is the 256 single bytes (ids 0–255, in byte order), the
// merged tokens in the order they were learned, then the special tokens
// (<|endoftext|>, <|im_start|>, <|im_end|> by default), which are added tokens.
//
// Run is the pipeline behind `masque tokenizer train`; Trainer is the library form
// (add texts, train, write).
package bpetrain

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config is what Run needs.
type Config struct {
	// Data are files or folders: JSONL files (rows with "text" and/or "messages"),
	// plain text files, or corpus folders (their */train.jsonl files). See
	// ResolveInputs.
	Data []string
	// Out is the folder that receives tokenizer.json and tokenizer_config.json.
	Out string
	// VocabSize, Pattern, MinFrequency and SpecialTokens are the trainer's options
	// (see Options; zero values take the defaults).
	VocabSize     int
	Pattern       string
	MinFrequency  int
	SpecialTokens []string
	// Progress, if set, is called now and then: while reading with the bytes read
	// and the bytes of all files ("read"), then while merging with the merges done
	// and wanted ("merge").
	Progress func(stage string, done, total int64)
}

// Result describes a finished Run.
type Result struct {
	Files      []InputFile
	Bytes      int64 // bytes of input read
	Texts      int64 // texts counted (JSONL: a row's text and distinct message contents)
	Pieces     int64 // pre-tokens counted
	Words      int   // distinct pre-tokens
	Model      *Model
	ReadTime   time.Duration
	TrainTime  time.Duration
	OutDir     string
	Tokenizer  string // path of tokenizer.json
	ConfigFile string // path of tokenizer_config.json
}

// Run trains a tokenizer on cfg.Data and writes it into cfg.Out. Nothing is written
// unless training succeeds; each file is replaced atomically.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Out == "" {
		return nil, errors.New("bpetrain: no output folder given")
	}
	if st, err := os.Stat(cfg.Out); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("bpetrain: %s: exists and is not a folder", cfg.Out)
	}
	opt := Options{VocabSize: cfg.VocabSize, Pattern: cfg.Pattern, MinFrequency: cfg.MinFrequency, SpecialTokens: cfg.SpecialTokens}
	if cfg.Progress != nil {
		opt.Progress = func(done, total int) { cfg.Progress("merge", int64(done), int64(total)) }
	}
	tr, err := NewTrainer(opt)
	if err != nil {
		return nil, err
	}
	files, err := ResolveInputs(cfg.Data)
	if err != nil {
		return nil, err
	}
	res := &Result{Files: files, OutDir: cfg.Out}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	start := time.Now()
	var lastReport time.Time
	read := func(n int) {
		res.Bytes += int64(n)
		if cfg.Progress != nil {
			if now := time.Now(); now.Sub(lastReport) > 100*time.Millisecond {
				lastReport = now
				cfg.Progress("read", res.Bytes, max(total, res.Bytes))
			}
		}
	}
	for _, f := range files {
		if err := readFile(ctx, f, tr.Add, read); err != nil {
			return nil, err
		}
	}
	if cfg.Progress != nil {
		cfg.Progress("read", res.Bytes, max(total, res.Bytes))
	}
	res.ReadTime = time.Since(start)
	res.Texts, res.Pieces, res.Words = tr.Texts(), tr.Pieces(), tr.Words()
	start = time.Now()
	m, err := tr.Train(ctx)
	if errors.Is(err, ErrEmpty) {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.Path
		}
		return nil, fmt.Errorf("%w: no text in %v", err, names)
	}
	if err != nil {
		return nil, err
	}
	res.TrainTime = time.Since(start)
	res.Model = m
	if err := m.Write(cfg.Out); err != nil {
		return nil, err
	}
	res.Tokenizer = filepath.Join(cfg.Out, "tokenizer.json")
	res.ConfigFile = filepath.Join(cfg.Out, "tokenizer_config.json")
	return res, nil
}

func readFile(ctx context.Context, f InputFile, add func(string), read func(int)) error {
	fh, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("bpetrain: %w", err)
	}
	defer fh.Close()
	if f.JSONL {
		return readJSONL(ctx, fh, f.Path, add, read)
	}
	return readText(ctx, fh, f.Path, add, read)
}
