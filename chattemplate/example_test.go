package chattemplate_test

import (
	"fmt"

	"github.com/masque-ai/masque/chattemplate"
)

func Example() {
	tpl, err := chattemplate.New(`{{ bos_token }}{% for m in messages %}` +
		`{{ '<|' + m.role + '|>\n' + m.content|trim + '\n' }}{% endfor %}` +
		`{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}`)
	if err != nil {
		panic(err)
	}
	msgs := []chattemplate.Message{
		{Role: "user", Content: "What is 2+2?"},
		{Role: "assistant", Content: " 4 "},
		{Role: "user", Content: "And 3+3?"},
	}
	out, spans, err := tpl.RenderSpans(msgs, chattemplate.Options{AddGenerationPrompt: true, BOSToken: "<s>"})
	if err != nil {
		panic(err)
	}
	fmt.Print(out)
	for _, s := range spans {
		fmt.Printf("message %d: %q\n", s.Message, out[s.Start:s.End])
	}
	// Output:
	// <s><|user|>
	// What is 2+2?
	// <|assistant|>
	// 4
	// <|user|>
	// And 3+3?
	// <|assistant|>
	// message 1: "4"
}
