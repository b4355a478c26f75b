// Package fetch brings an executor's URIs into its sandbox, as Mesos's
// fetcher: http(s) URLs or absolute paths on the agent, optionally checked
// against a sha256, cached by URI and checksum, made executable or
// extracted (.tar, .tar.gz, .tgz, .zip).
package fetch

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// URI is one file to fetch.
type URI struct {
	Value      string
	Executable bool
	Extract    bool
	Cache      bool
	OutputFile string
	SHA256     string
}

// Fetcher fetches into sandboxes, with a cache directory.
type Fetcher struct {
	CacheDir string
	Client   *http.Client
}

// Fetch puts u into dir and returns the path of the fetched file.
func (f *Fetcher) Fetch(ctx context.Context, u URI, dir string) (string, error) {
	name := u.OutputFile
	if name == "" {
		name = path.Base(u.Value)
		if pu, err := url.Parse(u.Value); err == nil && pu.Path != "" {
			name = path.Base(pu.Path)
		}
	}
	if name == "" || name == "." || name == "/" || strings.Contains(name, "/") {
		return "", fmt.Errorf("fetch %s: cannot derive a file name (set output_file)", u.Value)
	}
	dst := filepath.Join(dir, name)
	src := ""
	if u.Cache && f.CacheDir != "" {
		src = filepath.Join(f.CacheDir, cacheKey(u))
		if _, err := os.Stat(src); err != nil {
			if err := f.download(ctx, u, src); err != nil {
				return "", err
			}
		}
		if err := copyFile(src, dst); err != nil {
			return "", fmt.Errorf("fetch %s from cache: %w", u.Value, err)
		}
	} else if err := f.download(ctx, u, dst); err != nil {
		return "", err
	}
	if u.Executable {
		if err := os.Chmod(dst, 0o755); err != nil {
			return "", fmt.Errorf("fetch %s: %w", u.Value, err)
		}
	}
	if u.Extract && !u.Executable {
		if err := extract(dst, dir); err != nil {
			return "", fmt.Errorf("fetch %s: extract: %w", u.Value, err)
		}
	}
	return dst, nil
}

func cacheKey(u URI) string {
	h := sha256.Sum256([]byte(u.Value + "\x00" + strings.ToLower(u.SHA256)))
	return hex.EncodeToString(h[:])
}

// download writes u to dst through a temporary file, checking the sum.
func (f *Fetcher) download(ctx context.Context, u URI, dst string) error {
	var body io.ReadCloser
	if p, ok := strings.CutPrefix(u.Value, "file://"); ok || strings.HasPrefix(u.Value, "/") {
		if !ok {
			p = u.Value
		}
		fh, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", u.Value, err)
		}
		body = fh
	} else {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.Value, nil)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", u.Value, err)
		}
		c := f.Client
		if c == nil {
			c = http.DefaultClient
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", u.Value, err)
		}
		if resp.StatusCode/100 != 2 {
			resp.Body.Close()
			return fmt.Errorf("fetch %s: HTTP %s", u.Value, resp.Status)
		}
		body = resp.Body
	}
	defer body.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", u.Value, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", u.Value, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), body); err != nil {
		tmp.Close()
		return fmt.Errorf("fetch %s: %w", u.Value, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fetch %s: %w", u.Value, err)
	}
	if want := strings.ToLower(u.SHA256); want != "" {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("fetch %s: sha256 is %s, expected %s", u.Value, got, want)
		}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("fetch %s: %w", u.Value, err)
	}
	return os.Rename(tmp.Name(), dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// extract unpacks an archive the name says is one; other files stay as
// they are (Mesos extracts only known archive types too). Members are
// written through an os.Root at dir, so neither a "../" name nor a
// symlink already in the sandbox can place a file outside it.
func extract(file, dir string) error {
	lower := strings.ToLower(file)
	var unpack func(*os.Root) error
	switch {
	case strings.HasSuffix(lower, ".zip"):
		unpack = func(root *os.Root) error { return unzip(file, root) }
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		unpack = func(root *os.Root) error {
			fh, err := os.Open(file)
			if err != nil {
				return err
			}
			defer fh.Close()
			gz, err := gzip.NewReader(fh)
			if err != nil {
				return err
			}
			return untar(gz, root)
		}
	case strings.HasSuffix(lower, ".tar"):
		unpack = func(root *os.Root) error {
			fh, err := os.Open(file)
			if err != nil {
				return err
			}
			defer fh.Close()
			return untar(fh, root)
		}
	default:
		return nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return unpack(root)
}

// member is an archive member's name relative to the sandbox: a name
// that climbs out ("../x", "/etc/x") is refused, naming it.
func member(name string) (string, error) {
	clean := filepath.Clean(name)
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("archive member %q leaves the sandbox", name)
	}
	return clean, nil
}

func untar(r io.Reader, root *os.Root) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p, err := member(h.Name)
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeMember(root, p, os.FileMode(h.Mode)&0o777, tr); err != nil {
				return err
			}
		}
		// Links and devices are skipped: a fetched archive brings files.
	}
}

func unzip(file string, root *os.Root) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, zf := range zr.File {
		p, err := member(zf.Name)
		if err != nil {
			return err
		}
		if zf.FileInfo().IsDir() {
			if err := root.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if !zf.Mode().IsRegular() {
			continue // symlinks: see untar
		}
		rc, err := zf.Open()
		if err != nil {
			return err
		}
		err = writeMember(root, p, zf.Mode()&0o777, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func writeMember(root *os.Root, p string, mode os.FileMode, r io.Reader) error {
	if dir := filepath.Dir(p); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	out, err := root.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
