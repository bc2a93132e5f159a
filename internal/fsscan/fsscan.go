// Package fsscan searches the bytes of every file under a directory, for
// tests that prove something never reaches the disk (a raw identifier, a
// token's secret, a destroyed key). It reads only the data regions of sparse
// files (Badger's value logs are large sparse files), on systems that
// support SEEK_DATA, and the whole file elsewhere.
package fsscan

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Match is a file whose bytes contain a needle.
type Match struct {
	Path   string
	Needle []byte
}

// Scan returns every (file, needle) pair under dir where the file's bytes
// contain the needle.
func Scan(dir string, needles ...[]byte) ([]Match, error) {
	var out []Match
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		found, err := scanFile(path, needles)
		for _, n := range found {
			out = append(out, Match{Path: path, Needle: n})
		}
		return err
	})
	return out, err
}

func scanFile(path string, needles [][]byte) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	longest := 0
	for _, n := range needles {
		longest = max(longest, len(n))
	}
	var found [][]byte
	seen := make([]bool, len(needles))
	check := func(b []byte) {
		for i, n := range needles {
			if !seen[i] && len(n) > 0 && bytes.Contains(b, n) {
				seen[i] = true
				found = append(found, n)
			}
		}
	}
	// Walk data regions; keep the tail of each chunk so that a needle
	// across a chunk boundary is found.
	const chunk = 1 << 20
	buf := make([]byte, chunk+longest)
	var off int64
	for off < fi.Size() {
		start, end, err := dataRegion(f, off, fi.Size())
		if err != nil {
			return found, err
		}
		if start >= fi.Size() {
			break
		}
		carry := 0
		for pos := start; pos < end; {
			n := int(min(int64(chunk), end-pos))
			m, err := f.ReadAt(buf[carry:carry+n], pos)
			if err != nil && !errors.Is(err, io.EOF) {
				return found, err
			}
			check(buf[:carry+m])
			pos += int64(m)
			if m == 0 {
				break
			}
			keep := min(longest, carry+m)
			copy(buf, buf[carry+m-keep:carry+m])
			carry = keep
		}
		off = end
	}
	return found, nil
}
