package quant

import (
	"strings"
	"testing"
)

func TestParseDTypeOf(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DType
		err  string
	}{
		{"bf16", BF16, ""},
		{"BFloat16", BF16, ""},
		{"fp32", F32, ""},
		{"half", F16, ""},
		{"q8_0", 0, `unsupported type "q8_0" (want f32, bf16 or f16)`},
		{"f64", 0, `unsupported type "f64" (want f32, bf16 or f16)`},
	} {
		got, err := ParseDTypeOf(tc.in, F32, BF16, F16)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
	for s, want := range map[string]DType{"bfloat16": BF16, "float16": F16, "float32": F32, "": F32, "int8": F32} {
		if got := FromTorchDType(s); got != want {
			t.Errorf("FromTorchDType(%q) = %v, want %v", s, got, want)
		}
		if want != F32 && want.TorchDType() != s {
			t.Errorf("%v.TorchDType() = %q", want, want.TorchDType())
		}
	}
}
