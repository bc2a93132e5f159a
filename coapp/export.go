package coapp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// KindExport is the ledger kind of an export's audit entry.
const KindExport = "coapp.export/v1"

// ExportRequest asks for a dataset's export, for a purpose the caller holds
// a grant for, as of a ledger index (default: the latest this node
// applied), as "jsonl" (default) or "csv".
type ExportRequest struct {
	Dataset string `json:"dataset"`
	Purpose string `json:"purpose"`
	Format  string `json:"format,omitempty"`
	AsOf    uint64 `json:"as_of,omitempty"`
}

// ExportAudit is the audit entry every export appends before it releases a
// byte: who, which dataset, purpose and as-of index, how many rows went out
// and how many were held back, and the SHA-256 of the output. The same
// dataset, purpose, format and index give the same bytes, so anyone can
// check the hash by exporting again.
type ExportAudit struct {
	ID      uuid.UUID `json:"id"`
	Member  string    `json:"member"`
	Dataset string    `json:"dataset"`
	Purpose string    `json:"purpose"`
	Format  string    `json:"format"`
	AsOf    uint64    `json:"as_of"`
	// ConsentAt, when set, is the later index at which the subjects'
	// consent was checked too (the latest when an export as of an earlier
	// index ran): the same dataset, purpose, format, as_of and consent_at
	// give the same bytes.
	ConsentAt uint64 `json:"consent_at,omitempty"`
	// DecidedAt is the time consent was decided at (the node's clock when
	// the export ran); a replay decides at it too.
	DecidedAt  time.Time `json:"decided_at,omitzero"`
	Rows       int       `json:"rows"`
	Suppressed int       `json:"suppressed"`
	NoConsent  int       `json:"no_consent"`
	Erased     int       `json:"erased"`
	// Unreadable counts records skipped because they cannot be decrypted
	// (never written by an honest node).
	Unreadable int       `json:"unreadable,omitempty"`
	SHA256     string    `json:"sha256"`
	At         time.Time `json:"at"`
	// Epsilon is the privacy budget a differentially private aggregate
	// spent.
	Epsilon float64 `json:"epsilon,omitempty"`
	// Index is where the audit entry is in the ledger (set when read).
	Index uint64 `json:"index,omitempty"`
}

// exportRow is one released record.
type exportRow struct {
	Subject string                     `json:"subject"`
	Member  string                     `json:"member"`
	Type    string                     `json:"type"`
	Date    string                     `json:"date"`
	Fields  map[string]json.RawMessage `json:"fields"`
}

// scanStats counts what a scan held back.
type scanStats struct {
	noConsent, erased, retained, unreadable int
}

// exportPlan is a dataset resolved against its schemas for one export.
type exportPlan struct {
	d       DatasetInfo
	purpose string
	asOf    uint64
	at      time.Time // when consent is decided: the node's clock at the export
	// consentAt, when after asOf, is the latest index when the export
	// ran: a subject must hold consent then too, so that an export as of
	// an earlier index never brings back someone who withdrew since.
	consentAt   uint64
	consentTime time.Time
	types       map[string]*planType
	columns     []string // every field of every type, sorted, for CSV
	oldest      time.Time
	// refused are the record entries every replica refused (no valid
	// batch signature): never part of a dataset.
	refused map[uint64]bool
}

type planType struct {
	dt     DatasetType
	schema map[int]Schema // by version
	quasi  []string       // fields that are quasi-identifiers, sorted
}

// plan resolves a dataset for an export as of an index.
//
// at is the time consent is decided at (and retention counted from): the
// node's clock when an export runs, recorded in its audit entry so that a
// replay uses the same. Entries' own times are written by callers (a
// record's is the exchange's date), so they are not used for it.
func (n *Node) plan(v *ledger.View, d DatasetInfo, purpose string, asOf, consentAt uint64, at time.Time) (*exportPlan, error) {
	if _, err := v.Entry(asOf); err != nil {
		return nil, err
	}
	p := &exportPlan{d: d, purpose: purpose, asOf: asOf, at: at, types: map[string]*planType{}, refused: n.view.refusedRecords()}
	if consentAt > asOf {
		if _, err := v.Entry(consentAt); err != nil {
			return nil, err
		}
		p.consentAt, p.consentTime = consentAt, at
	}
	if d.Retention != "" {
		end, err := consent.AddDuration(p.at, d.Retention)
		if err != nil {
			return nil, err
		}
		p.oldest = p.at.Add(-end.Sub(p.at))
	}
	cols := map[string]bool{}
	for _, dt := range d.Types {
		pt := &planType{dt: dt, schema: map[int]Schema{}}
		for ver := 1; ; ver++ {
			s, ok := n.view.schema(dt.Type, ver)
			if !ok {
				break
			}
			pt.schema[ver] = s
		}
		latest := pt.schema[len(pt.schema)]
		for _, f := range dt.Fields {
			cols[f] = true
			if fd := latest.field(f); fd != nil && fd.Class == "quasi" {
				if tr, ok := dt.Transforms[f]; !ok || tr.Action != "drop" {
					pt.quasi = append(pt.quasi, f)
				}
			}
		}
		sort.Strings(pt.quasi)
		p.types[dt.Type] = pt
	}
	for c := range cols {
		p.columns = append(p.columns, c)
	}
	sort.Strings(p.columns)
	return p, nil
}

// scan calls fn with each record of the dataset as of the plan's index
// that may be released: of the dataset's types, within its retention,
// whose subject consented (both tiers) at that index, not erased; fields
// as the dataset exports them, subject pseudonymised in the dataset's
// domain, with its quasi-identifier group.
func (n *Node) scan(v *ledger.View, p *exportPlan, st *scanStats, fn func(r *exportRow, ledgerSubject pseudonym.Pseudonym, group string) error) error {
	dsDomain := pseudonym.DatasetDomain(p.d.Name)
	// Per-scan caches, bounded so that memory stays flat however large
	// the dataset: a subject's data key (or erasure) and dataset
	// pseudonym, and the dataset pseudonyms of pseudonymised field values.
	type subjectState struct {
		subject pseudonym.Pseudonym
		author  string
		legacy  bool
		allowed bool
		dk      pseudonym.Secret
		erased  bool
		// unreadable: the subject's key does not unwrap
		unreadable bool
		ds         string
	}
	const cacheMax = 1 << 16
	// Subjects by their pseudonym as stored: binary payloads' bytes (the
	// lookup copies nothing), the first format's strings.
	subjects := map[string]*subjectState{}
	legacySubjects := map[string]*subjectState{}
	values := map[string]string{}
	for e, err := range v.Entries(0, p.asOf+1) {
		if err != nil {
			return err
		}
		if e.Kind != KindRecord || p.refused[e.Index] {
			continue
		}
		// The payload's head, without copying it: most records of a
		// large dataset are of subjects seen already.
		var head recordPayload
		var pt *planType
		var ss *subjectState
		legacy := isLegacyPayload(e.Payload)
		if legacy {
			if head, err = decodeRecordPayload(e.Payload); err != nil {
				return fmt.Errorf("coapp: record %s: %w", e.ID, err)
			}
			if pt = p.types[head.Type]; pt == nil {
				continue
			}
			ss = legacySubjects[string(head.Subject)]
		} else {
			bp, err := splitBinaryPayload(e.Payload)
			if err != nil {
				return fmt.Errorf("coapp: record %s: %w", e.ID, err)
			}
			if pt = p.types[string(bp.typ)]; pt == nil {
				continue
			}
			ss = subjects[string(bp.subject)]
			head = recordPayload{Type: pt.dt.Type, Version: bp.version, Box: bp.box}
			if ss != nil {
				head.Subject = ss.subject
			} else {
				head.Subject = bp.pseudonym()
			}
		}
		if !p.oldest.IsZero() && e.Time.Before(p.oldest) {
			st.retained++
			continue
		}
		if ss == nil || ss.author != e.Author {
			// A subject's consent, as of the plan's index and time, is
			// the same for every record of theirs from one member.
			ss = &subjectState{subject: head.Subject, author: e.Author, legacy: legacy}
			d := n.view.decide(string(head.Subject), e.Author, p.d.Category, p.purpose, p.at, p.asOf)
			ss.allowed = d.Allowed
			if ss.allowed && p.consentAt > p.asOf {
				ss.allowed = n.view.decide(string(head.Subject), e.Author, p.d.Category, p.purpose, p.consentTime, p.consentAt).Allowed
			}
			dk, err := n.subjectDataKey(v, head.Subject, legacy)
			switch {
			case errors.Is(err, ErrErased):
				ss.erased = true
			case errors.Is(err, errUnreadable):
				ss.unreadable = true
			case err != nil:
				return err
			default:
				ds, err := n.keys.Pseudonym(dsDomain, string(head.Subject))
				if err != nil {
					return err
				}
				ss.dk, ss.ds = dk, string(ds)
			}
			cache, key := subjects, string(subjectKeyName(head.Subject)[2:])
			if legacy {
				cache, key = legacySubjects, string(head.Subject)
			}
			if len(cache) >= cacheMax {
				clear(cache)
			}
			cache[key] = ss
		}
		if !ss.allowed {
			st.noConsent++
			continue
		}
		if ss.erased {
			st.erased++
			continue
		}
		var fields map[string]json.RawMessage
		if len(head.Box) > 0 && !ss.unreadable {
			fields, err = openFields(ss.dk, e, &head)
		}
		if ss.unreadable || errors.Is(err, errUnreadable) {
			st.unreadable++
			continue
		}
		if err != nil {
			return err
		}
		schema := pt.schema[head.Version]
		row := &exportRow{Subject: ss.ds, Member: e.Author, Type: head.Type, Date: e.Time.UTC().Format("2006-01-02"), Fields: make(map[string]json.RawMessage, len(pt.dt.Fields))}
		for _, f := range pt.dt.Fields {
			raw, ok := fields[f]
			if !ok {
				continue
			}
			fd := schema.field(f)
			if fd != nil && fd.Policy.Action == "pseudonymise" {
				// A ledger-level pseudonym never leaves: map it into the
				// dataset's domain.
				s, _ := jsonString(raw)
				dp, ok := values[s]
				if !ok {
					ps, err := n.keys.Pseudonym(dsDomain, s)
					if err != nil {
						return err
					}
					dp = string(ps)
					if len(values) >= cacheMax {
						clear(values)
					}
					values[s] = dp
				}
				raw = quoteJSON(dp)
			}
			out, keep, err := applyTransform(pt.dt.Transforms[f], raw)
			if err != nil {
				return fmt.Errorf("coapp: record %s field %s: %w", e.ID, f, err)
			}
			if keep {
				row.Fields[f] = out
			}
		}
		var group strings.Builder
		group.WriteString(head.Type)
		for _, q := range pt.quasi {
			group.WriteByte(0)
			group.Write(row.Fields[q])
		}
		if err := fn(row, head.Subject, group.String()); err != nil {
			return err
		}
	}
	return nil
}

// applyTransform applies a dataset's transform to a stored value.
func applyTransform(t Transform, raw json.RawMessage) (json.RawMessage, bool, error) {
	switch {
	case t.Action == "":
		return raw, true, nil
	case t.Action == "drop":
		return nil, false, nil
	case t.Width > 0:
		x, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(x, 0) {
			return raw, true, nil // a value already generalised to a range stays as it is
		}
		s, err := pseudonym.GeneraliseNumber(x, t.Width)
		if err != nil {
			return nil, false, err
		}
		return quoteJSON(s), true, nil
	default:
		s, ok := jsonString(raw)
		if !ok {
			s = string(raw)
		}
		if r := []rune(s); len(r) > t.Keep {
			s = string(r[:t.Keep]) + "*"
		}
		return quoteJSON(s), true, nil
	}
}

// kGroups counts the distinct subjects of each quasi-identifier group, up
// to k: a group is released when k different people are in it, however
// many records each has. Memory is bounded by groups × k.
type kGroups map[string][]pseudonym.Pseudonym

func (g kGroups) add(group string, s pseudonym.Pseudonym, k int) {
	seen := g[group]
	if len(seen) >= k {
		return
	}
	for _, x := range seen {
		if x == s {
			return
		}
	}
	g[group] = append(seen, s)
}

func (g kGroups) reached(group string, k int) bool { return len(g[group]) >= k }

// appendJSON writes a row as encoding/json would (fields sorted by name),
// and a newline, without reflection: the same row, the same bytes.
func (r *exportRow) appendJSON(b []byte) []byte {
	b = append(b, `{"subject":`...)
	b = appendQuoted(b, r.Subject)
	b = append(b, `,"member":`...)
	b = appendQuoted(b, r.Member)
	b = append(b, `,"type":`...)
	b = appendQuoted(b, r.Type)
	b = append(b, `,"date":`...)
	b = appendQuoted(b, r.Date)
	b = append(b, `,"fields":`...)
	b = appendFields(b, r.Fields)
	return append(b, "}\n"...)
}

// exportWriter writes rows in a format, deterministically.
type exportWriter struct {
	buf     []byte
	format  string
	columns []string
	w       io.Writer
	csv     *csv.Writer
	header  bool
}

func newExportWriter(format string, columns []string, w io.Writer) *exportWriter {
	ew := &exportWriter{format: format, columns: columns, w: w}
	if format == "csv" {
		ew.csv = csv.NewWriter(w)
	}
	return ew
}

func (ew *exportWriter) write(r *exportRow) error {
	if ew.format != "csv" {
		ew.buf = r.appendJSON(ew.buf[:0])
		_, err := ew.w.Write(ew.buf)
		return err
	}
	if !ew.header {
		ew.header = true
		if err := ew.csv.Write(append([]string{"subject", "member", "type", "date"}, ew.columns...)); err != nil {
			return err
		}
	}
	rec := []string{r.Subject, r.Member, r.Type, r.Date}
	for _, c := range ew.columns {
		raw, ok := r.Fields[c]
		s, isString := jsonString(raw)
		switch {
		case !ok:
			s = ""
		case !isString:
			s = string(raw)
		}
		rec = append(rec, s)
	}
	return ew.csv.Write(rec)
}

func (ew *exportWriter) flush() error {
	if ew.csv == nil {
		return nil
	}
	if !ew.header {
		ew.header = true
		if err := ew.csv.Write(append([]string{"subject", "member", "type", "date"}, ew.columns...)); err != nil {
			return err
		}
	}
	ew.csv.Flush()
	return ew.csv.Error()
}

// preparedExport is an export computed and waiting in a scratch file:
// every row that may be released, encoded, with its quasi-identifier
// group, and the groups' people (up to k). Its rows are read twice: once
// to hash what will be released (for the audit entry), once to release
// it; the ledger is read once.
type preparedExport struct {
	scratch *os.File
	format  string
	columns []string
	k       int
	people  []int // by group number: distinct people, up to k
	st      scanStats
}

// prepare reads the ledger once, as planned, into a scratch file in dir.
func (n *Node) prepare(v *ledger.View, p *exportPlan, format, dir string) (_ *preparedExport, err error) {
	scratch, err := os.CreateTemp(dir, "export-scratch-*.tmp")
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
	var st scanStats
	// Each group's number in the scratch file and its people (up to k).
	type groupState struct {
		id     uint64
		people []pseudonym.Pseudonym
	}
	groups := map[string]*groupState{}
	var byID []*groupState
	var line bytes.Buffer
	lw := newExportWriter(format, p.columns, &line)
	lw.header = true // the header is written once, below
	var hdr [2 * binary.MaxVarintLen64]byte
	err = n.scan(v, p, &st, func(r *exportRow, s pseudonym.Pseudonym, g string) error {
		gs := groups[g]
		if gs == nil {
			gs = &groupState{id: uint64(len(byID))}
			groups[g] = gs
			byID = append(byID, gs)
		}
		if len(gs.people) < p.d.K && !slices.Contains(gs.people, s) {
			gs.people = append(gs.people, s)
		}
		id := gs.id
		line.Reset()
		if err := lw.write(r); err != nil {
			return err
		}
		if lw.csv != nil {
			lw.csv.Flush()
		}
		k := binary.PutUvarint(hdr[:], id)
		k += binary.PutUvarint(hdr[k:], uint64(line.Len()))
		if _, err := sw.Write(hdr[:k]); err != nil {
			return err
		}
		_, err := sw.Write(line.Bytes())
		return err
	})
	if err == nil {
		err = sw.Flush()
	}
	if err != nil {
		return nil, err
	}
	pe := &preparedExport{scratch: scratch, format: format, columns: p.columns, k: p.d.K, st: st, people: make([]int, len(byID))}
	for i, gs := range byID {
		pe.people[i] = len(gs.people)
	}
	return pe, nil
}

// close removes the scratch file.
func (pe *preparedExport) close() {
	pe.scratch.Close()
	os.Remove(pe.scratch.Name())
}

// writeTo writes the rows of groups of at least k people to w (the CSV
// header first) and returns the audit's counts and the output's SHA-256.
func (pe *preparedExport) writeTo(w io.Writer) (ExportAudit, error) {
	if _, err := pe.scratch.Seek(0, io.SeekStart); err != nil {
		return ExportAudit{}, err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 256<<10)
	if pe.format == "csv" {
		hw := newExportWriter(pe.format, pe.columns, bw)
		if err := hw.flush(); err != nil { // the header
			return ExportAudit{}, err
		}
	}
	var a ExportAudit
	rd := bufio.NewReaderSize(pe.scratch, 256<<10)
	buf := make([]byte, 0, 4096)
	for {
		id, err := binary.ReadUvarint(rd)
		if err == io.EOF {
			break
		}
		if err != nil {
			return ExportAudit{}, err
		}
		size, err := binary.ReadUvarint(rd)
		if err != nil || id >= uint64(len(pe.people)) || size > 16<<20 {
			return ExportAudit{}, fmt.Errorf("coapp: export scratch file damaged")
		}
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(rd, buf); err != nil {
			return ExportAudit{}, err
		}
		if pe.people[id] < pe.k {
			a.Suppressed++
			continue
		}
		a.Rows++
		if _, err := bw.Write(buf); err != nil {
			return ExportAudit{}, err
		}
	}
	if err := bw.Flush(); err != nil {
		return ExportAudit{}, err
	}
	a.NoConsent, a.Erased, a.Unreadable = pe.st.noConsent, pe.st.erased, pe.st.unreadable
	a.SHA256 = hex.EncodeToString(h.Sum(nil))
	return a, nil
}

// Export writes dataset req.Dataset to w for member, who must hold a grant
// for req.Purpose. It first computes the export and appends its audit
// entry, and only then writes the same bytes to w: no export leaves
// without its audit entry. It runs on the leader; the HTTP API runs it on
// any node.
func (n *Node) Export(ctx context.Context, member string, req ExportRequest, w io.Writer) (ExportAudit, error) {
	return n.export(ctx, nil, member, req, nil, w)
}

// export runs an export on this node (a follower appends the audit entry
// through the leader with r's credentials); before, when not nil, is
// called with the audit once it is in the ledger, before any byte is
// written.
func (n *Node) export(ctx context.Context, r *http.Request, member string, req ExportRequest, before func(ExportAudit), w io.Writer) (ExportAudit, error) {
	n.awaitView(ctx)
	format := req.Format
	if format == "" {
		format = "jsonl"
	}
	if format != "jsonl" && format != "csv" {
		return ExportAudit{}, invalid("format", "jsonl or csv")
	}
	d, ok := n.view.dataset(req.Dataset)
	if !ok {
		return ExportAudit{}, fmt.Errorf("%w: dataset %s", ErrNotFound, req.Dataset)
	}
	if _, err := n.view.grantFor(d.Name, member, req.Purpose, time.Now()); err != nil {
		return ExportAudit{}, err
	}
	asOf := req.AsOf
	applied := n.view.applied()
	if asOf == 0 {
		asOf = applied - 1
	}
	if asOf >= applied || asOf < d.Created {
		return ExportAudit{}, invalid("as_of", "an index from %d (the dataset's creation) to %d (the latest applied)", d.Created, applied-1)
	}
	// The export goes to a temporary file beside the ledger (dataset
	// pseudonyms only), its audit entry into the ledger, and only then the
	// file to w.
	// The export is computed into a scratch file beside the ledger
	// (dataset pseudonyms only) and hashed, its audit entry appended, and
	// only then the same rows written to w.
	var pe *preparedExport
	decidedAt := time.Now().UTC()
	err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		p, err := n.plan(v, d, req.Purpose, asOf, applied-1, decidedAt)
		if err != nil {
			return err
		}
		pe, err = n.prepare(v, p, format, n.cfg.Dir)
		return err
	})
	if err != nil {
		return ExportAudit{}, err
	}
	defer pe.close()
	audit, err := pe.writeTo(io.Discard)
	if err != nil {
		return ExportAudit{}, err
	}
	if audit.Unreadable > 0 {
		n.logger.Warn("export skips records that cannot be decrypted", "dataset", d.Name, "records", audit.Unreadable)
	}
	audit.ID, audit.Member, audit.Dataset, audit.Purpose, audit.Format, audit.AsOf = uuid.Must(uuid.NewV7()), member, d.Name, req.Purpose, format, asOf
	if applied-1 > asOf {
		audit.ConsentAt = applied - 1
	}
	audit.DecidedAt = decidedAt
	audit.At = time.Now().UTC()
	index, err := n.submitSigned(ctx, r, member, KindExport, audit, audit.At)
	if err != nil {
		return ExportAudit{}, err
	}
	audit.Index = index
	if before != nil {
		before(audit)
	}
	if _, err := pe.writeTo(w); err != nil {
		return audit, err
	}
	n.logger.Info("dataset exported", "member", member, "dataset", d.Name, "as_of", asOf, "rows", audit.Rows, "suppressed", audit.Suppressed, "audit_index", index)
	return audit, nil
}

// Share is one member's contribution to a dataset over a period.
type Share struct {
	Member       string  `json:"member"`
	Records      int     `json:"records"`
	Subjects     int     `json:"subjects"`
	RecordShare  float64 `json:"record_share"`
	SubjectShare float64 `json:"subject_share"`
}

// SharesReport is each member's share of a dataset's records and distinct
// subjects, for records dated in [From, To), as of an index: the basis of
// a data dividend, visible to every member.
type SharesReport struct {
	Dataset  string    `json:"dataset"`
	AsOf     uint64    `json:"as_of"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	Records  int       `json:"records"`
	Subjects int       `json:"subjects"`
	Shares   []Share   `json:"shares"`
}

// Shares counts each member's contribution to a dataset: the records an
// export would draw on (consented, not erased, before k-suppression)
// dated in [from, to) (zero: unbounded).
func (n *Node) Shares(ctx context.Context, dataset string, from, to time.Time) (SharesReport, error) {
	d, ok := n.view.dataset(dataset)
	if !ok {
		return SharesReport{}, fmt.Errorf("%w: dataset %s", ErrNotFound, dataset)
	}
	asOf := n.view.applied() - 1
	rep := SharesReport{Dataset: d.Name, AsOf: asOf, From: from, To: to, Shares: []Share{}}
	records := map[string]int{}
	subjects := map[string]map[pseudonym.Pseudonym]bool{}
	all := map[pseudonym.Pseudonym]bool{}
	err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
		p, err := n.plan(v, d, d.Purpose, asOf, asOf, time.Now().UTC())
		if err != nil {
			return err
		}
		var st scanStats
		return n.scan(v, p, &st, func(r *exportRow, s pseudonym.Pseudonym, _ string) error {
			t, _ := time.Parse("2006-01-02", r.Date)
			if (!from.IsZero() && t.Before(from.Truncate(24*time.Hour))) || (!to.IsZero() && !t.Before(to)) {
				return nil
			}
			records[r.Member]++
			if subjects[r.Member] == nil {
				subjects[r.Member] = map[pseudonym.Pseudonym]bool{}
			}
			subjects[r.Member][s] = true
			all[s] = true
			rep.Records++
			return nil
		})
	})
	if err != nil {
		return SharesReport{}, err
	}
	rep.Subjects = len(all)
	for m, c := range records {
		sh := Share{Member: m, Records: c, Subjects: len(subjects[m])}
		if rep.Records > 0 {
			sh.RecordShare = float64(c) / float64(rep.Records)
		}
		subjTotal := 0
		for _, s := range subjects {
			subjTotal += len(s)
		}
		if subjTotal > 0 {
			sh.SubjectShare = float64(sh.Subjects) / float64(subjTotal)
		}
		rep.Shares = append(rep.Shares, sh)
	}
	sort.Slice(rep.Shares, func(i, j int) bool { return rep.Shares[i].Member < rep.Shares[j].Member })
	return rep, nil
}

// Audit lists a dataset's exports, oldest first.
func (n *Node) Audit(dataset string) ([]ExportAudit, error) {
	if _, ok := n.view.dataset(dataset); !ok {
		return nil, fmt.Errorf("%w: dataset %s", ErrNotFound, dataset)
	}
	var out []ExportAudit
	for _, a := range n.view.exports() {
		if a.Dataset == dataset {
			out = append(out, a)
		}
	}
	return out, nil
}

// ExportsOf lists the exports that included data of subject (a raw
// identifier, pseudonymised in member's domain): each export is replayed
// as of its index (exports are reproducible) for that subject alone.
func (n *Node) ExportsOf(ctx context.Context, member, subject string) ([]ExportAudit, error) {
	p, err := n.subjectPseudonym(member, subject)
	if err != nil {
		return nil, err
	}
	var out []ExportAudit
	for _, a := range n.view.exports() {
		d, ok := n.view.dataset(a.Dataset)
		if !ok {
			continue
		}
		included := false
		err := n.ledger.Read(ctx, ledger.Stale, func(v *ledger.View) error {
			at := a.DecidedAt
			if at.IsZero() {
				at = a.At
			}
			plan, err := n.plan(v, d, a.Purpose, a.AsOf, a.ConsentAt, at)
			if err != nil {
				return err
			}
			groups := kGroups{}
			var mine []string
			var st scanStats
			err = n.scan(v, plan, &st, func(_ *exportRow, s pseudonym.Pseudonym, g string) error {
				groups.add(g, s, d.K)
				if string(s) == p {
					mine = append(mine, g)
				}
				return nil
			})
			for _, g := range mine {
				included = included || groups.reached(g, d.K)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if included {
			out = append(out, a)
		}
	}
	return out, nil
}

func (v *view) exports() []ExportAudit {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return append([]ExportAudit(nil), v.gov.exports...)
}

// applyExport records an export's audit entry.
func (v *view) applyExport(e ledger.Entry) error {
	var a ExportAudit
	signer, err := v.decodeSigned(e, &a)
	if err != nil {
		return err
	}
	if err := v.checkAudit(signer, &a, e.Time); err != nil {
		return err
	}
	if a.Epsilon != 0 {
		d, ok := v.gov.datasets[a.Dataset]
		key := a.Dataset + "\x00" + a.Purpose
		if !ok || !(a.Epsilon > 0) || v.gov.spent[key]+a.Epsilon > d.DPBudget+1e-12 {
			return fmt.Errorf("%w: %s for %s", ErrBudgetSpent, a.Dataset, a.Purpose)
		}
		v.gov.spent[key] += a.Epsilon
	}
	a.Index = e.Index
	v.gov.exports = append(v.gov.exports, a)
	return nil
}

func sortDatasets(ds []DatasetInfo) {
	sort.Slice(ds, func(i, j int) bool { return ds[i].Name < ds[j].Name })
}

// checkAudit says whether member may write an audit entry: it names the
// member, its time is the entry's, and the member holds a grant on the
// dataset for the purpose then (so that nobody else writes audit entries
// or spends a dataset's privacy budget).
func (v *view) checkAudit(member string, a *ExportAudit, at time.Time) error {
	if a.Member != member {
		return fmt.Errorf("%w: an audit entry names its signer", ErrForbidden)
	}
	if !a.At.Equal(at) {
		return invalid("at", "the audit's time is the entry's")
	}
	for _, g := range v.gov.grants {
		if g.Dataset == a.Dataset && g.Grantee == member && g.Purpose == a.Purpose && at.Before(g.Until) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s holds no grant on %s for %s", ErrForbidden, member, a.Dataset, a.Purpose)
}
