package mask

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSaveCreatesParents: `masque subnet --out masks/x.safetensors`
// failed after all the work when masks/ did not exist, naming a temporary
// file; Save creates the missing folders (0755).
func TestSaveCreatesParents(t *testing.T) {
	m := loadHF(t, "llama")
	mk := randomMask(m, 0.5, 1, nil)
	path := filepath.Join(t.TempDir(), "masks", "deep", "x.safetensors")
	if err := mk.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || st.Mode().Perm() != 0o755&^umask() {
		t.Fatalf("folder %v, %v; want mode %o", st.Mode(), err, 0o755&^umask())
	}
}

// TestApplyFolderMode: the model folder mask apply writes has normal
// permissions (it was 0700, from its temporary folder).
func TestApplyFolderMode(t *testing.T) {
	m := loadHF(t, "llama")
	mk := randomMask(m, 0.5, 1, nil)
	out := filepath.Join(t.TempDir(), "models", "pruned")
	if err := Apply(m, mk, out, ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o755&^umask() {
		t.Fatalf("folder %v, %v; want mode %o", st.Mode(), err, 0o755&^umask())
	}
}

// umask returns the process's umask (it is set and restored at once).
func umask() os.FileMode {
	dir, err := os.MkdirTemp("", "umask-")
	if err != nil {
		return 0o022
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "d")
	if err := os.Mkdir(p, 0o777); err != nil {
		return 0o022
	}
	st, err := os.Stat(p)
	if err != nil {
		return 0o022
	}
	return 0o777 &^ st.Mode().Perm()
}
