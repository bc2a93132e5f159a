package release

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"slices"

	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// ScratchPattern names an export's scratch files in a node's directory;
// a node removes those a crash left behind when it starts.
const ScratchPattern = "export-scratch-*.tmp"

// Prepared is an export computed and waiting in a scratch file: every row
// that may be released, encoded, with its quasi-identifier group, and the
// groups' people (up to k). Its rows are read twice: once to hash what
// will be released (for the audit entry), once to release it; the ledger
// is read once.
type Prepared struct {
	scratch *os.File
	w       Writer
	k       int
	people  []int // by group number: distinct people, up to k
	st      Stats
}

// Counts is what an export released and held back, and the SHA-256 of its
// output.
type Counts struct {
	Rows, Suppressed              int
	NoConsent, Erased, Unreadable int
	SHA256                        string
}

// Prepare reads the ledger once, as planned, into a scratch file in dir,
// encoding rows with w.
func Prepare(v *ledger.View, p *Plan, keys Keys, w Writer, dir string) (_ *Prepared, err error) {
	scratch, err := os.CreateTemp(dir, ScratchPattern)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			scratch.Close()
			os.Remove(scratch.Name())
		}
	}()
	sw := bufio.NewWriterSize(scratch, 256<<10)
	var st Stats
	// Each group's number in the scratch file and its people (up to k).
	type groupState struct {
		id     uint64
		people []pseudonym.Pseudonym
	}
	groups := map[string]*groupState{}
	var byID []*groupState
	var line []byte
	var hdr [2 * binary.MaxVarintLen64]byte
	err = Scan(v, p, keys, &st, func(r *Row, s pseudonym.Pseudonym, g string) error {
		gs := groups[g]
		if gs == nil {
			gs = &groupState{id: uint64(len(byID))}
			groups[g] = gs
			byID = append(byID, gs)
		}
		if len(gs.people) < p.d.K && !slices.Contains(gs.people, s) {
			gs.people = append(gs.people, s)
		}
		var err error
		if line, err = w.AppendRow(line[:0], r); err != nil {
			return err
		}
		k := binary.PutUvarint(hdr[:], gs.id)
		k += binary.PutUvarint(hdr[k:], uint64(len(line)))
		if _, err := sw.Write(hdr[:k]); err != nil {
			return err
		}
		_, err = sw.Write(line)
		return err
	})
	if err == nil {
		err = sw.Flush()
	}
	if err != nil {
		return nil, err
	}
	pe := &Prepared{scratch: scratch, w: w, k: p.d.K, st: st, people: make([]int, len(byID))}
	for i, gs := range byID {
		pe.people[i] = len(gs.people)
	}
	return pe, nil
}

// Close removes the scratch file.
func (pe *Prepared) Close() {
	pe.scratch.Close()
	os.Remove(pe.scratch.Name())
}

// Release writes the rows of groups of at least k people to w (the
// header first) and returns the counts and the output's SHA-256.
func (pe *Prepared) Release(w io.Writer) (Counts, error) {
	if _, err := pe.scratch.Seek(0, io.SeekStart); err != nil {
		return Counts{}, err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 256<<10)
	header, err := pe.w.Header()
	if err != nil {
		return Counts{}, err
	}
	if _, err := bw.Write(header); err != nil {
		return Counts{}, err
	}
	var c Counts
	rd := bufio.NewReaderSize(pe.scratch, 256<<10)
	buf := make([]byte, 0, 4096)
	for {
		id, err := binary.ReadUvarint(rd)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Counts{}, err
		}
		size, err := binary.ReadUvarint(rd)
		if err != nil || id >= uint64(len(pe.people)) || size > 16<<20 {
			return Counts{}, errors.New("coapp: export scratch file damaged")
		}
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(rd, buf); err != nil {
			return Counts{}, err
		}
		if pe.people[id] < pe.k {
			c.Suppressed++
			continue
		}
		c.Rows++
		if _, err := bw.Write(buf); err != nil {
			return Counts{}, err
		}
	}
	if err := bw.Flush(); err != nil {
		return Counts{}, err
	}
	c.NoConsent, c.Erased, c.Unreadable = pe.st.NoConsent, pe.st.Erased, pe.st.Unreadable
	c.SHA256 = hex.EncodeToString(h.Sum(nil))
	return c, nil
}

// ContentType is the export's media type.
func (pe *Prepared) ContentType() string { return pe.w.ContentType() }
