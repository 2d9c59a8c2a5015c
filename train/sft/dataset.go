package sft

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/masque-ai/masque/chatdata"
	"github.com/masque-ai/masque/train"
)

// Options tune Load.
type Options struct {
	Read chatdata.ReadOptions
	// MaxLen is the longest sequence in tokens (the model's context, or
	// less). Longer rows are truncated if Truncate is set, else bad rows.
	MaxLen   int
	Truncate bool
	// OnBadRow is chatdata.SkipBadRows (default) or chatdata.FailOnBadRow; it
	// applies to rows that cannot be read and to rows that cannot be
	// encoded alike.
	OnBadRow string
	// EvalFraction of the rows (after dropping bad ones) is held out for
	// evaluation, chosen by a shuffle seeded with Seed; at least one row
	// when the fraction is positive and there are two rows or more.
	EvalFraction float64
	Seed         uint64
	// Warn, if set, receives every skipped row.
	Warn func(chatdata.Problem)
	// MaxRows, if > 0, encodes only the first MaxRows readable
	// conversations of the file (and reports only the problems before the
	// last of them): a cheap prefix of a large file.
	MaxRows int
}

// Dataset is tokenized training data.
type Dataset struct {
	Train, Eval []train.Sequence
	// Skipped lists the rows left out.
	Skipped []chatdata.Problem
	// Rows is the number of usable rows; Truncated how many were cut to
	// MaxLen; Unaligned how many were tokenized piecewise.
	Rows, Truncated, Unaligned int
	// Tokens and Targets count all tokens and the trained ones.
	Tokens, Targets int
}

// Load reads and encodes the JSONL file at path.
func Load(path string, enc *Encoder, o Options) (*Dataset, error) {
	var err error
	if o.OnBadRow, err = chatdata.CheckPolicy(o.OnBadRow); err != nil {
		return nil, err
	}
	convs, probs, err := chatdata.Read(path, o.Read)
	if err != nil {
		return nil, err
	}
	if o.MaxRows > 0 && len(convs) > o.MaxRows {
		convs = convs[:o.MaxRows]
		last := convs[len(convs)-1].Line
		probs = slices.DeleteFunc(probs, func(p chatdata.Problem) bool { return p.Line > last })
	}
	ds := &Dataset{}
	bad := func(p chatdata.Problem) error {
		if err := chatdata.BadRow(o.OnBadRow, p, o.Warn); err != nil {
			return err
		}
		ds.Skipped = append(ds.Skipped, p)
		return nil
	}
	// Rows are processed in file order, so problems are reported in order.
	pi := 0
	var seqs []train.Sequence
	for _, c := range convs {
		for pi < len(probs) && probs[pi].Line < c.Line {
			if err := bad(probs[pi]); err != nil {
				return nil, err
			}
			pi++
		}
		s, perr := encodeRow(enc, c, o, ds)
		if perr != nil {
			if err := bad(*perr); err != nil {
				return nil, err
			}
			continue
		}
		seqs = append(seqs, s)
	}
	for ; pi < len(probs); pi++ {
		if err := bad(probs[pi]); err != nil {
			return nil, err
		}
	}
	if len(seqs) == 0 {
		return nil, fmt.Errorf("%s: no usable training rows (%d skipped)", path, len(ds.Skipped))
	}
	ds.Rows = len(seqs)
	for _, s := range seqs {
		ds.Tokens += len(s.Tokens)
		for _, t := range s.Targets {
			if t != train.IgnoreIndex {
				ds.Targets++
			}
		}
	}
	ds.Train, ds.Eval = Split(seqs, o.EvalFraction, o.Seed)
	return ds, nil
}

func encodeRow(enc *Encoder, c chatdata.Conversation, o Options, ds *Dataset) (train.Sequence, *chatdata.Problem) {
	fail := func(format string, a ...any) (train.Sequence, *chatdata.Problem) {
		return train.Sequence{}, &chatdata.Problem{File: c.File, Line: c.Line, Msg: fmt.Sprintf(format, a...)}
	}
	e, err := enc.Encode(c.Messages)
	if err != nil {
		return fail("%v", err)
	}
	s := e.Seq
	if o.MaxLen > 0 && len(s.Tokens) > o.MaxLen {
		if !o.Truncate {
			return fail("sequence of %d tokens is longer than the context of %d (use --truncate to cut it)", len(s.Tokens), o.MaxLen)
		}
		// The last kept position still predicts the first cut token.
		s.Tokens, s.Targets = s.Tokens[:o.MaxLen], s.Targets[:o.MaxLen]
		ds.Truncated++
	}
	n := 0
	for _, t := range s.Targets {
		if t != train.IgnoreIndex {
			n++
		}
	}
	if n == 0 {
		return fail("no assistant tokens to train on within the first %d tokens", len(s.Tokens))
	}
	if !e.Aligned {
		ds.Unaligned++
	}
	return s, nil
}

// Split holds out a fraction of seqs for evaluation, chosen by a shuffle
// seeded with seed; the rest keep their order.
func Split(seqs []train.Sequence, fraction float64, seed uint64) (trainSet, evalSet []train.Sequence) {
	if fraction <= 0 || len(seqs) < 2 {
		return seqs, nil
	}
	k := int(fraction*float64(len(seqs)) + 0.5)
	k = min(max(k, 1), len(seqs)-1)
	idx := rand.New(rand.NewPCG(seed, 0x5e1)).Perm(len(seqs))
	held := make([]bool, len(seqs))
	for _, i := range idx[:k] {
		held[i] = true
	}
	for i, s := range seqs {
		if held[i] {
			evalSet = append(evalSet, s)
		} else {
			trainSet = append(trainSet, s)
		}
	}
	return trainSet, evalSet
}
