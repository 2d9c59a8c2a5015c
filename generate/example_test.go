package generate_test

import (
	"context"
	"fmt"
	"log"

	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/tokenizer"
)

// Greedy generation with the tiny stories260K model, streaming the text and
// stopping at the first period.
func ExampleGenerate() {
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.LoadLlama2C("../testdata/stories260K/tok512.bin")
	if err != nil {
		log.Fatal(err)
	}
	prompt := tok.Encode("Once upon a time", true) // BOS + prompt
	o := generate.Options{MaxTokens: 40, Stop: []string{"."}}
	res, err := generate.Generate(context.Background(), m, generate.FromTokenizer(tok), prompt, o,
		func(s string) error { fmt.Print(s); return nil })
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println()
	fmt.Println(res.FinishReason, res.PromptTokens, len(res.IDs))
	// Output:
	// , there was a little girl named Lily
	// stop 5 11
}

// A chat-like exchange: the second call continues the same token sequence,
// and the Session feeds only the tokens that are not cached yet.
func ExampleSession() {
	m, err := model.LoadLlama2C("../testdata/stories260K/stories260K.bin")
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.LoadLlama2C("../testdata/stories260K/tok512.bin")
	if err != nil {
		log.Fatal(err)
	}
	s := generate.NewSession(m, 0)
	ids := tok.Encode("Lily and Tom", true)
	o := generate.Options{MaxTokens: 8}
	res, err := s.Generate(context.Background(), generate.FromTokenizer(tok), ids, o, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", res.Text)
	ids = append(append(ids, res.IDs...), tok.Encode(" The end", false)...)
	res, err = s.Generate(context.Background(), generate.FromTokenizer(tok), ids, o, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q reused %d of %d tokens\n", res.Text, res.CachedTokens, len(ids))
	// Output:
	// " were playing in the par"
	// ". They had a big box" reused 12 of 17 tokens
}
