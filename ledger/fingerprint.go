package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// A fingerprint lets a node look for a destroyed key's bytes in its own
// files without keeping the bytes: their length, a rolling hash of them
// (a polynomial hash, to slide over every file in one pass) and their
// SHA-256 (to confirm a window the rolling hash picks). Neither tells the
// key's value to whoever reads the fingerprint.
type fingerprint struct {
	Len  uint16
	Roll uint64
	Sum  [sha256.Size]byte
}

const fingerprintLen = 2 + 8 + sha256.Size

// rollBase is the rolling hash's base, an odd 64-bit constant; arithmetic
// is modulo 2^64.
const rollBase = 0x9E3779B97F4A7C15

func rollHash(b []byte) uint64 {
	var h uint64
	for _, c := range b {
		h = h*rollBase + uint64(c) + 1
	}
	return h
}

func newFingerprint(value []byte) fingerprint {
	return fingerprint{Len: uint16(len(value)), Roll: rollHash(value), Sum: sha256.Sum256(value)}
}

func (fp fingerprint) encode() []byte {
	b := make([]byte, 0, fingerprintLen)
	b = binary.BigEndian.AppendUint16(b, fp.Len)
	b = binary.BigEndian.AppendUint64(b, fp.Roll)
	return append(b, fp.Sum[:]...)
}

func decodeFingerprint(b []byte) (fingerprint, bool) {
	if len(b) != fingerprintLen {
		return fingerprint{}, false
	}
	var fp fingerprint
	fp.Len = binary.BigEndian.Uint16(b)
	fp.Roll = binary.BigEndian.Uint64(b[2:])
	copy(fp.Sum[:], b[10:])
	return fp, fp.Len > 0
}

// scanFiles looks for any of the fingerprinted values in the regular files
// under roots, and returns the paths of the files holding one (each once).
// A root that does not exist is skipped.
func scanFiles(roots []string, fps []fingerprint) ([]string, error) {
	if len(fps) == 0 {
		return nil, nil
	}
	byLen := map[uint16]map[uint64][]fingerprint{}
	for _, fp := range fps {
		if byLen[fp.Len] == nil {
			byLen[fp.Len] = map[uint64][]fingerprint{}
		}
		byLen[fp.Len][fp.Roll] = append(byLen[fp.Len][fp.Roll], fp)
	}
	var found []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			hit, err := scanFile(path, byLen)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed meanwhile (a compaction)
				}
				return err
			}
			if hit {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			return found, err
		}
	}
	return found, nil
}

// scanFile slides a window of each fingerprinted length over the file's
// data: the holes of a sparse file (Badger preallocates its files) are
// skipped, as they read as zeros.
func scanFile(path string, byLen map[uint16]map[uint64][]fingerprint) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	type window struct {
		n    int
		pow  uint64 // rollBase^(n-1)
		set  map[uint64][]fingerprint
		bits *[1 << 16 / 64]uint64 // the set's hashes, by their top 16 bits
	}
	var ws []window
	maxN := 0
	for n, set := range byLen {
		w := window{n: int(n), pow: 1, set: set, bits: new([1 << 16 / 64]uint64)}
		for i := 1; i < w.n; i++ {
			w.pow *= rollBase
		}
		for h := range set {
			w.bits[h>>48/64] |= 1 << (h >> 48 % 64)
		}
		ws = append(ws, w)
		maxN = max(maxN, w.n)
	}
	buf := make([]byte, maxN+1<<20)
	for off := int64(0); off < fi.Size(); {
		start, end := dataExtent(f, off, fi.Size())
		if start >= fi.Size() {
			break
		}
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return false, err
		}
		// Each chunk is scanned with the last maxN-1 bytes of the one
		// before it in front, so that no window is missed at a seam.
		carry := 0
		for pos := start; pos < end; {
			n, err := io.ReadFull(f, buf[carry:carry+int(min(int64(1<<20), end-pos))])
			if n == 0 {
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					break
				}
				return false, err
			}
			data := buf[:carry+n]
			for _, w := range ws {
				if len(data) < w.n {
					continue
				}
				var h uint64
				for i := 0; i < w.n; i++ {
					h = h*rollBase + uint64(data[i]) + 1
				}
				for i := w.n; ; i++ {
					if w.bits[h>>48/64]&(1<<(h>>48%64)) != 0 {
						if cands, ok := w.set[h]; ok {
							sum := sha256.Sum256(data[i-w.n : i])
							for _, fp := range cands {
								if fp.Sum == sum {
									return true, nil
								}
							}
						}
					}
					if i == len(data) {
						break
					}
					h = (h-(uint64(data[i-w.n])+1)*w.pow)*rollBase + uint64(data[i]) + 1
				}
			}
			pos += int64(n)
			carry = min(maxN-1, len(data))
			copy(buf, data[len(data)-carry:])
			if err != nil {
				break
			}
		}
		off = end
	}
	return false, nil
}

// Whence values of lseek(2) for sparse files (Linux and most Unixes).
const (
	seekData = 3
	seekHole = 4
)

// dataExtent returns the next range of the file at or after off that holds
// data; where the system cannot tell, the rest of the file.
func dataExtent(f *os.File, off, size int64) (start, end int64) {
	start, err := f.Seek(off, seekData)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) {
			return size, size // no data after off
		}
		return off, size
	}
	end, err = f.Seek(start, seekHole)
	if err != nil || end > size {
		end = size
	}
	return start, end
}
