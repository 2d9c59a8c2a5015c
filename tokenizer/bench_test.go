package tokenizer

import (
	"strings"
	"testing"
)

var benchText = strings.Repeat("Once upon a time, there was a little girl named Lily. She loved to play outside in the park! "+
	"def f(x):\n    return x * 2  # 1234567\n中文 テキスト 😀 café naïve\n", 40)

func benchEncode(b *testing.B, name string) {
	tk := loadTok(b, name)
	tk.Encode(benchText, false)
	b.SetBytes(int64(len(benchText)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk.Encode(benchText, false)
	}
}

func BenchmarkEncodeLlama3(b *testing.B)  { benchEncode(b, "llama3") }
func BenchmarkEncodeQwen3(b *testing.B)   { benchEncode(b, "qwen3") }
func BenchmarkEncodeSmolLM2(b *testing.B) { benchEncode(b, "smollm2") }
func BenchmarkEncodeMistral(b *testing.B) { benchEncode(b, "mistral") }

func BenchmarkEncodeLongWordUncached(b *testing.B) {
	tk := loadTok(b, "llama3")
	for i := 0; i < b.N; i++ {
		tk.cacheMu.Lock()
		clear(tk.cache)
		tk.cacheMu.Unlock()
		tk.Encode(strings.Repeat("a", 256)+strings.Repeat("abcdefghijklm", 20), false)
	}
}

func BenchmarkDecodeLlama3(b *testing.B) {
	tk := loadTok(b, "llama3")
	ids := tk.Encode(benchText, false)
	b.SetBytes(int64(len(benchText)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tk.Decode(ids, false)
	}
}

func BenchmarkLoadQwen3(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Load(testdata + "/tokenizers/qwen3"); err != nil {
			b.Fatal(err)
		}
	}
}
