package coapp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"coapp.coop/ledger"
	"coapp.coop/pseudonym"
)

// ErrErased is returned for a subject whose data key was destroyed: their
// records cannot be decrypted, and nothing more is published about them.
var ErrErased = errors.New("coapp: subject erased")

// Each subject's record fields are sealed (XChaCha20-Poly1305) under a data
// key of their own, stored in the ledger's key store wrapped under a
// key-encryption key derived from the federation secret, under the name
// "s/" + the subject's pseudonym in binary (its key version and 32 bytes;
// records in the first, JSON, payload format used "subject/" + the
// pseudonym). Erasing a subject destroys that key on every replica: their
// records stay in the log (and the Merkle tree still verifies over the
// ciphertexts), but no replica, snapshot or later backup can open them.

func subjectKeyName(p pseudonym.Pseudonym) []byte { return appendPseudonym([]byte("s/"), p) }

// legacyKeyName is the key name of records in the JSON payload format.
func legacyKeyName(p pseudonym.Pseudonym) []byte { return []byte("subject/" + string(p)) }

// keyCache holds unwrapped data keys by the hash of their wrapped form, so
// that a key is unwrapped once; and, for publishing, each subject's key as
// last seen (subjectKey). A stale subject entry is harmless: the ledger
// checks every Append's keys against its key store, and a destroyed or
// replaced key fails the Append (and is forgotten here). Reads take a
// read lock only, so that concurrent publishers do not queue on it.
type keyCache struct {
	mu       sync.RWMutex
	keys     map[[sha256.Size]byte]pseudonym.Secret
	subjects map[pseudonym.Pseudonym]*subjectKey
}

// subjectKey is a subject's data key as the key store held it: its name
// there, the wrapped value and its SHA-256 (what a key requirement
// names), and the key unwrapped.
type subjectKey struct {
	name    []byte
	wrapped []byte
	hash    [sha256.Size]byte
	dk      pseudonym.Secret
}

const keyCacheMax = 100000

func (c *keyCache) subject(p pseudonym.Pseudonym) (*subjectKey, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	k, ok := c.subjects[p]
	return k, ok
}

func (c *keyCache) rememberSubject(p pseudonym.Pseudonym, k *subjectKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subjects == nil || len(c.subjects) >= keyCacheMax {
		c.subjects = map[pseudonym.Pseudonym]*subjectKey{}
	}
	c.subjects[p] = k
}

// forgetKey drops the remembered subject key of that name (an Append
// found it stale).
func (c *keyCache) forgetKey(name []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, k := range c.subjects {
		if string(k.name) == string(name) {
			delete(c.subjects, p)
			return
		}
	}
}

// forget drops erased subjects' keys from memory.
func (c *keyCache) forget(ps []pseudonym.Pseudonym) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		if k, ok := c.subjects[p]; ok {
			delete(c.keys, k.hash)
			delete(c.subjects, p)
		}
	}
}

func (c *keyCache) unwrap(k *pseudonym.Keyring, name, wrapped []byte) (pseudonym.Secret, error) {
	h := sha256.Sum256(wrapped)
	c.mu.RLock()
	dk, ok := c.keys[h]
	c.mu.RUnlock()
	if ok {
		return dk, nil
	}
	dk, err := k.UnwrapKey(wrapped, name)
	if err != nil {
		return pseudonym.Secret{}, err
	}
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= keyCacheMax {
		c.keys = map[[sha256.Size]byte]pseudonym.Secret{}
	}
	c.keys[h] = dk
	c.mu.Unlock()
	return dk, nil
}

// subjectKeys returns the data key of each subject, read from the ledger on
// this node (the leader, when publishing), creating the missing ones; and
// the key requirements that tie an Append to exactly those keys.
func (n *Node) subjectKeys(ctx context.Context, subjects []pseudonym.Pseudonym) (map[pseudonym.Pseudonym]pseudonym.Secret, []ledger.KeyRequirement, map[pseudonym.Pseudonym]*subjectKey, error) {
	keys := make(map[pseudonym.Pseudonym]pseudonym.Secret, len(subjects))
	// Keys created here are remembered only once the Append that creates
	// them succeeds (see sealAndAppend): another writer may win the race.
	created := map[pseudonym.Pseudonym]*subjectKey{}
	reqs := make([]ledger.KeyRequirement, 0, len(subjects))
	var missing []pseudonym.Pseudonym
	for _, s := range subjects {
		if _, done := keys[s]; done {
			continue
		}
		if k, ok := n.cache.subject(s); ok {
			keys[s] = k.dk
			reqs = append(reqs, ledger.KeyRequirement{Name: k.name, Hash: k.hash})
			continue
		}
		keys[s] = pseudonym.Secret{}
		missing = append(missing, s)
	}
	if len(missing) == 0 {
		return keys, reqs, created, nil
	}
	wrapped := make([][]byte, len(missing))
	read := func(v *ledger.View) error {
		for i, s := range missing {
			w, err := v.Key(subjectKeyName(s))
			switch {
			case errors.Is(err, ledger.ErrKeyDestroyed):
				return fmt.Errorf("%w: %s", ErrErased, s)
			case errors.Is(err, ledger.ErrNotFound):
				w = nil
			case err != nil:
				return err
			}
			wrapped[i] = w
		}
		return nil
	}
	if err := n.ledger.Read(ctx, ledger.Stale, read); err != nil {
		return nil, nil, nil, err
	}
	for i, s := range missing {
		name, w := subjectKeyName(s), wrapped[i]
		if w == nil {
			dk, err := pseudonym.NewSecret()
			if err != nil {
				return nil, nil, nil, err
			}
			if w, err = n.keys.WrapKey(dk, name); err != nil {
				return nil, nil, nil, err
			}
			keys[s] = dk
			req := ledger.NewKey(name, w)
			reqs = append(reqs, req)
			created[s] = &subjectKey{name: name, wrapped: w, hash: req.Hash, dk: dk}
			continue
		}
		dk, err := n.cache.unwrap(n.keys, name, w)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("coapp: subject key %s: %w", s, err)
		}
		keys[s] = dk
		req := ledger.ExistingKey(name, w)
		reqs = append(reqs, req)
		n.cache.rememberSubject(s, &subjectKey{name: name, wrapped: w, hash: req.Hash, dk: dk})
	}
	return keys, reqs, created, nil
}

// recordAD is the additional data a record's box is bound to: the entry it
// travels in and the subject it belongs to, so that a box cannot be moved
// to another record. Records in the binary payload format use a binary
// form of it (recordADv2); those in the JSON format, this text form.
func recordAD(e ledger.Entry, p *recordPayload) []byte {
	if !isLegacyPayload(e.Payload) {
		return recordADv2(e, p)
	}
	b := make([]byte, 0, 160+len(e.Author)+len(p.Type)+len(p.Subject))
	b = append(b, "coapp/v1/record|"...)
	b = append(b, e.ID.String()...)
	b = append(b, '|')
	b = append(b, e.Author...)
	b = append(b, '|')
	b = e.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.999999999Z")
	b = append(b, '|')
	b = append(b, p.Type...)
	b = append(b, '|')
	b = strconv.AppendInt(b, int64(p.Version), 10)
	b = append(b, '|')
	return append(b, p.Subject...)
}

// recordADv2 is the binary additional data of records in the binary
// payload format: a context, the entry's id and time, and length-prefixed
// author, type, schema version and subject.
func recordADv2(e ledger.Entry, p *recordPayload) []byte {
	b := make([]byte, 0, 64+len(e.Author)+len(p.Type)+len(p.Subject))
	b = append(b, "coapp/v2/record|"...)
	b = append(b, e.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	b = binary.AppendUvarint(b, uint64(len(e.Author)))
	b = append(b, e.Author...)
	b = binary.AppendUvarint(b, uint64(len(p.Type)))
	b = append(b, p.Type...)
	b = binary.AppendUvarint(b, uint64(p.Version))
	b = binary.AppendUvarint(b, uint64(len(p.Subject)))
	return append(b, p.Subject...)
}

// openRecord decrypts a stored record's fields on this node, reading the
// subject's key from v. An erased subject's record gives ErrErased.
func (n *Node) openRecord(v *ledger.View, e ledger.Entry) (recordPayload, map[string]json.RawMessage, error) {
	p, err := decodeRecordPayload(e.Payload)
	if err != nil {
		return p, nil, fmt.Errorf("coapp: record %s: %w", e.ID, err)
	}
	if len(p.Box) == 0 {
		return p, nil, nil
	}
	dk, err := n.subjectDataKey(v, p.Subject, isLegacyPayload(e.Payload))
	if err != nil {
		return p, nil, err
	}
	fields, err := openFields(dk, e, &p)
	return p, fields, err
}

// subjectDataKey reads a subject's data key from the key store:
// ErrErased when it was destroyed. legacy asks for the key of records in
// the JSON payload format.
func (n *Node) subjectDataKey(v *ledger.View, s pseudonym.Pseudonym, legacy bool) (pseudonym.Secret, error) {
	name := subjectKeyName(s)
	if legacy {
		name = legacyKeyName(s)
	}
	w, err := v.Key(name)
	if errors.Is(err, ledger.ErrKeyDestroyed) {
		return pseudonym.Secret{}, ErrErased
	}
	if err != nil {
		return pseudonym.Secret{}, err
	}
	dk, err := n.cache.unwrap(n.keys, name, w)
	if err != nil {
		return pseudonym.Secret{}, fmt.Errorf("%w: subject key %s: %v", errUnreadable, s, err)
	}
	return dk, nil
}

// errUnreadable marks a record that cannot be decrypted: its subject's
// key does not unwrap, or its box does not open. No honest node writes
// one (the leader opens every box a follower sealed before appending
// it); exports and aggregates skip and count them rather than fail.
var errUnreadable = errors.New("coapp: record cannot be decrypted")

// openFields decrypts a record's sealed fields.
func openFields(dk pseudonym.Secret, e ledger.Entry, p *recordPayload) (map[string]json.RawMessage, error) {
	plain, err := pseudonym.Open(dk, p.Box, recordAD(e, p))
	if err != nil {
		return nil, fmt.Errorf("%w: record %s: %v", errUnreadable, e.ID, err)
	}
	fields, err := decodeFields(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: record %s fields: %v", errUnreadable, e.ID, err)
	}
	return fields, nil
}

// subjectRequest is the body of the subject endpoints: the person's raw
// identifier travels only in a request body, never in a URL.
type subjectRequest struct {
	Subject string `json:"subject"`
}

// SubjectRecord is one record about a subject, as the right of access
// shows it: its fields decrypted, or Erased.
type SubjectRecord struct {
	RecordInfo
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
	Erased bool                       `json:"erased,omitempty"`
	// Unreadable is set for a record that cannot be decrypted (never
	// written by an honest node).
	Unreadable bool `json:"unreadable,omitempty"`
}

// SubjectReport answers the right of access: the subject's pseudonyms, as
// the member and the federation know them, and every record under them.
type SubjectReport struct {
	Pseudonyms []pseudonym.Pseudonym `json:"pseudonyms"`
	Records    []SubjectRecord       `json:"records"`
}

// subjectPseudonyms returns a subject's pseudonyms in the member's domain
// and the federation's, under every key version held.
func (n *Node) subjectPseudonyms(member, subject string, federation bool) ([]pseudonym.Pseudonym, error) {
	var out []pseudonym.Pseudonym
	domains := []pseudonym.Domain{pseudonym.MemberDomain(member)}
	if federation {
		domains = append(domains, pseudonym.Federation)
	}
	for _, d := range domains {
		ps, err := n.keys.All(d, subject)
		if err != nil {
			return nil, invalid("subject", "cannot be pseudonymised: %v", err)
		}
		out = append(out, ps...)
	}
	return out, nil
}

// Access lists what the ledger holds about a subject, as member sees them:
// the records under the subject's pseudonyms in the member's domain and the
// federation's, with their fields decrypted (erased ones marked). It reads
// the whole log.
func (n *Node) Access(ctx context.Context, member, subject string) (SubjectReport, error) {
	ps, err := n.subjectPseudonyms(member, subject, true)
	if err != nil {
		return SubjectReport{}, err
	}
	want := make(map[pseudonym.Pseudonym]bool, len(ps))
	for _, p := range ps {
		want[p] = true
	}
	rep := SubjectReport{Pseudonyms: ps, Records: []SubjectRecord{}}
	n.awaitView(ctx) // for records' refusals
	err = n.ledger.Read(ctx, ledger.Leader, func(v *ledger.View) error {
		for e, err := range v.Entries(0, v.Size()) {
			if err != nil {
				return err
			}
			if e.Kind != KindRecord {
				continue
			}
			// Only what this member published: another member's records
			// about the same person (under the federation's pseudonym)
			// are theirs to disclose.
			if e.Author != member {
				continue
			}
			head, err := decodeRecordPayload(e.Payload)
			if err != nil || !want[head.Subject] {
				continue
			}
			leaf, err := v.LeafHash(e.Index)
			if err != nil {
				return err
			}
			p, fields, err := n.openRecord(v, e)
			sr := SubjectRecord{RecordInfo: RecordInfo{
				Receipt: Receipt{ID: e.ID, Index: e.Index, Leaf: leaf},
				Type:    p.Type, Version: p.Version, Time: e.Time, Member: e.Author,
			}}
			if err := n.view.recordRefusal(e.Index); err != nil {
				sr.Refused = strings.TrimPrefix(err.Error(), "coapp: ")
			}
			switch {
			case errors.Is(err, ErrErased):
				sr.Erased = true
			case errors.Is(err, errUnreadable):
				sr.Unreadable = true
			case err != nil:
				return err
			default:
				sr.Fields = fields
			}
			rep.Records = append(rep.Records, sr)
		}
		return nil
	})
	return rep, err
}

// Erase destroys a subject's data keys, under their pseudonyms in member's
// domain (every key version), on every replica: the records member
// published about them can no longer be decrypted anywhere, and nothing
// more can be published about them under those pseudonyms. Over HTTP an
// admin's request also erases the federation-wide pseudonym (see
// EraseFederationWide). It returns once the destruction is committed, with
// its Raft index; each node then purges its files (ledger.WaitPurged).
func (n *Node) Erase(ctx context.Context, member, subject string) ([]pseudonym.Pseudonym, uint64, error) {
	return n.erase(ctx, member, subject, false)
}

// EraseFederationWide also destroys the subject's key under the
// federation's pseudonym, which every member's records about the person
// share (schemas with subject_domain "federation"): an admin's act.
func (n *Node) EraseFederationWide(ctx context.Context, member, subject string) ([]pseudonym.Pseudonym, uint64, error) {
	return n.erase(ctx, member, subject, true)
}

func (n *Node) erase(ctx context.Context, member, subject string, federation bool) ([]pseudonym.Pseudonym, uint64, error) {
	ps, err := n.subjectPseudonyms(member, subject, federation)
	if err != nil {
		return nil, 0, err
	}
	names := make([][]byte, 0, 2*len(ps))
	for _, p := range ps {
		names = append(names, subjectKeyName(p), legacyKeyName(p))
	}
	index, err := n.ledger.Destroy(ctx, names...)
	if err != nil {
		return nil, 0, err
	}
	n.cache.forget(ps)
	n.logger.Info("subject erased", "member", member, "raft_index", index)
	return ps, index, nil
}

func (n *Node) handleAccess(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var req subjectRequest
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	rep, err := n.Access(r.Context(), c.member, req.Subject)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

// EraseResponse is the answer of POST /v1/subjects/erase.
type EraseResponse struct {
	Pseudonyms []pseudonym.Pseudonym `json:"pseudonyms"`
	RaftIndex  uint64                `json:"raft_index"`
}

func (n *Node) handleErase(w http.ResponseWriter, r *http.Request, c caller) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if n.needsLeader() {
		return n.forward(w, r, body)
	}
	var req subjectRequest
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	ps, index, err := n.erase(r.Context(), c.member, req.Subject, c.admin)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, EraseResponse{Pseudonyms: ps, RaftIndex: index})
}
