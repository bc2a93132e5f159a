package consent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
)

// Kind is the ledger kind of a consent event.
const Kind = "coapp.consent/v1"

// ReceiptVersion names the shape of Receipt.
const ReceiptVersion = "coapp-consent-receipt/1"

// Receipt is what a person keeps after any consent event, withdrawal
// included: the ledger entry that holds the signed event, and the proof
// that the ledger of that size and root includes it. Anyone verifies it
// offline with the controller member's public key (Verify); comparing the
// root with the federation's ledger later (a consistency proof) shows the
// entry was never taken out.
type Receipt struct {
	Version string          `json:"version"`
	Entry   ReceiptEntry    `json:"entry"`
	Index   uint64          `json:"index"`
	Size    uint64          `json:"size"`
	Root    merkle.Hash     `json:"root"`
	Proof   []merkle.Hash   `json:"proof"`
	Event   *Event          `json:"event,omitempty"`
	Kantara *KantaraReceipt `json:"kantara,omitempty"`
}

// ReceiptEntry is the ledger entry of a consent event, everything its leaf
// hash covers.
type ReceiptEntry struct {
	ID      uuid.UUID `json:"id"`
	Kind    string    `json:"kind"`
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
	Payload []byte    `json:"payload"`
}

// NewReceipt makes the receipt of the consent event held by e, at index of
// a ledger of size and root, with its inclusion proof.
func NewReceipt(e entry.Entry, size uint64, root merkle.Hash, proof []merkle.Hash) Receipt {
	if proof == nil {
		proof = []merkle.Hash{}
	}
	return Receipt{
		Version: ReceiptVersion,
		Entry:   ReceiptEntry{ID: e.ID, Kind: e.Kind, Author: e.Author, Time: e.Time.UTC(), Payload: e.Payload},
		Index:   e.Index, Size: size, Root: root, Proof: proof,
	}
}

// Verify checks a receipt offline: its entry holds a consent event signed
// by the entry's author under pub, the inclusion proof places that entry
// at Index in the ledger of Size and Root, and the readable copies (Event,
// and Kantara for a given event) say what the signed event says; trust the
// event Verify returns. A Kantara view of a later event describes the
// record given earlier, which that event does not carry: Verify cannot
// check it. vocab, when not nil, also checks the event's purposes. Every
// failure wraps ErrBadReceipt (or ErrBadSignature).
func (r *Receipt) Verify(pub ed25519.PublicKey, vocab *Vocabulary) (Event, error) {
	if r.Version != ReceiptVersion {
		return Event{}, fail(ErrBadReceipt, "version", "must be %q", ReceiptVersion)
	}
	if r.Entry.Kind != Kind {
		return Event{}, fail(ErrBadReceipt, "entry.kind", "not a consent event")
	}
	s, e, err := Decode(r.Entry.Payload, vocab)
	if err != nil {
		return Event{}, &Error{Err: ErrBadReceipt, Field: "entry.payload", Reason: err.Error()}
	}
	if s.Signer != r.Entry.Author {
		return Event{}, fail(ErrBadReceipt, "entry.author", "the event is signed by another member")
	}
	if err := s.Verify(pub); err != nil {
		return Event{}, err
	}
	leaf := entry.Entry{ID: r.Entry.ID, Kind: r.Entry.Kind, Author: r.Entry.Author, Time: r.Entry.Time, Payload: r.Entry.Payload}.LeafHash()
	if err := merkle.VerifyInclusion(leaf, r.Index, r.Size, r.Proof, r.Root); err != nil {
		return Event{}, &Error{Err: ErrBadReceipt, Field: "proof", Reason: err.Error()}
	}
	// The readable copies must say what the signed event says.
	if r.Event != nil {
		got, _ := json.Marshal(r.Event)
		want, _ := json.Marshal(&e)
		if !bytes.Equal(got, want) {
			return Event{}, fail(ErrBadReceipt, "event", "differs from the signed event")
		}
	}
	if r.Kantara != nil && e.Type == Given {
		got, _ := json.Marshal(r.Kantara)
		want, _ := json.Marshal(Kantara(e.Consent, &e, r.Entry.ID, pub))
		if !bytes.Equal(got, want) {
			return Event{}, fail(ErrBadReceipt, "kantara", "differs from the signed event")
		}
	}
	return e, nil
}

// KantaraReceipt is the Kantara Initiative Consent Receipt v1.1 shape of a
// consent event, for tools that read it. The signed Receipt is the proof;
// this is a view of it (Kantara v1.1 has no withdrawal receipt: ours carry
// the event's status in consentType).
type KantaraReceipt struct {
	Version          string           `json:"version"`
	Jurisdiction     string           `json:"jurisdiction"`
	ConsentTimestamp int64            `json:"consentTimestamp"`
	CollectionMethod string           `json:"collectionMethod"`
	ConsentReceiptID string           `json:"consentReceiptID"`
	PublicKey        string           `json:"publicKey,omitempty"`
	Language         string           `json:"language,omitempty"`
	PiiPrincipalID   string           `json:"piiPrincipalId"`
	PiiControllers   []KantaraControl `json:"piiControllers"`
	PolicyURL        string           `json:"policyUrl"`
	Services         []KantaraService `json:"services"`
	Sensitive        bool             `json:"sensitive"`
	SpiCat           []string         `json:"spiCat"`
}

// KantaraControl is a Kantara piiController.
type KantaraControl struct {
	PiiController string `json:"piiController"`
	Contact       string `json:"contact"`
}

// KantaraService is a Kantara service with its purposes.
type KantaraService struct {
	Service  string           `json:"service"`
	Purposes []KantaraPurpose `json:"purposes"`
}

// KantaraPurpose is a Kantara purpose.
type KantaraPurpose struct {
	Purpose              string   `json:"purpose"`
	PurposeCategory      []string `json:"purposeCategory"`
	ConsentType          string   `json:"consentType"`
	PiiCategory          []string `json:"piiCategory"`
	PrimaryPurpose       bool     `json:"primaryPurpose"`
	Termination          string   `json:"termination"`
	ThirdPartyDisclosure bool     `json:"thirdPartyDisclosure"`
	ThirdPartyName       string   `json:"thirdPartyName,omitempty"`
}

// Kantara returns the Kantara v1.1 view of event e on record rec, whose
// receipt entry has id; pub is the controller's public key.
func Kantara(rec *Record, e *Event, id uuid.UUID, pub ed25519.PublicKey) KantaraReceipt {
	var kp []KantaraPurpose
	termination := rec.WithdrawalMethod
	if e.Validity != nil {
		if end := e.Validity.End(); !end.IsZero() {
			termination = "valid until " + end.Format(time.RFC3339) + "; " + rec.WithdrawalMethod
		}
	}
	for i, p := range rec.Purposes {
		kp = append(kp, KantaraPurpose{
			Purpose: p, PurposeCategory: []string{p}, ConsentType: string(e.Type) + " (" + rec.LegalBasis + ")",
			PiiCategory: rec.DataCategories, PrimaryPurpose: i == 0, Termination: termination,
			ThirdPartyDisclosure: len(rec.Recipients) > 0, ThirdPartyName: joinComma(rec.Recipients),
		})
	}
	k := KantaraReceipt{
		Version: "KI-CR-v1.1.0", Jurisdiction: rec.Jurisdiction, ConsentTimestamp: e.At.Unix(),
		CollectionMethod: "coapp " + SchemaVersion + ", indicated by " + e.By, ConsentReceiptID: id.String(),
		Language: rec.Language, PiiPrincipalID: rec.Subject,
		PiiControllers: []KantaraControl{{PiiController: rec.Controller, Contact: rec.WithdrawalMethod}},
		PolicyURL:      rec.Notice.URI,
		Services:       []KantaraService{{Service: rec.Controller, Purposes: kp}},
		SpiCat:         []string{},
	}
	if len(pub) == ed25519.PublicKeySize {
		k.PublicKey = base64.StdEncoding.EncodeToString(pub)
	}
	return k
}

func joinComma(list []string) string {
	out := ""
	for i, s := range list {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}
