package deploy

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Generated returns every generated file, by its path under deploy/.
func Generated() (map[string][]byte, error) {
	files := map[string][]byte{}
	prof, err := PodProfileJSON()
	if err != nil {
		return nil, err
	}
	files["seccomp/playground.json"] = prof
	kube, err := KubeFiles(DefaultKube)
	if err != nil {
		return nil, err
	}
	maps.Copy(files, kube)
	nginx, err := NginxRouting(ExampleNginxSite)
	if err != nil {
		return nil, err
	}
	files["nginx/routing.conf"] = nginx
	return files, nil
}

// WriteFiles writes files (path under dir → content) into dir.
func WriteFiles(dir string, files map[string][]byte) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
