package synth

import (
	"testing"

	"github.com/masque-ai/masque/synth/teacher"
)

func TestUseTeacher(t *testing.T) {
	for _, c := range []struct{ set, opened, want int }{{0, 1, 4}, {0, 8, 8}, {3, 8, 3}} {
		com := Common{Workers: c.set}
		com.UseTeacher(&teacher.Opened{Model: "m", Workers: c.opened})
		if com.Workers != c.want || com.TeacherModel != "m" {
			t.Errorf("Workers %d, teacher's %d: got %d (model %q), want %d", c.set, c.opened, com.Workers, com.TeacherModel, c.want)
		}
	}
}
