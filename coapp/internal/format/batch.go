package format

import (
	"crypto/ed25519"
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"coapp.coop/ledger/entry"
	"coapp.coop/ledger/merkle"
)

// Signed records. Every batch of records a member publishes is signed with
// the member's Ed25519 key: one signature over the Merkle leaf hashes of
// the batch's record entries, written as an entry of its own (KindBatch)
// just before them, in the same append. A batch payload is:
//
//	1 | uvarint n | n leaf hashes (32 bytes each) | Ed25519 signature (64)
const batchFormat byte = 1

var batchNamespace = uuid.MustParse("0b8c6f6e-2f4d-4a53-8d2e-91b1f3c7a6d5")

// BatchMessage is what a member signs: the kind's context, the author and
// the leaf hashes of its records, in order.
func BatchMessage(author string, leaves []merkle.Hash) []byte {
	b := make([]byte, 0, 32+len(author)+len(leaves)*merkle.Size)
	b = append(b, "coapp/v1/"+KindBatch+"|"...)
	b = binary.AppendUvarint(b, uint64(len(author)))
	b = append(b, author...)
	for _, h := range leaves {
		b = append(b, h[:]...)
	}
	return b
}

// SignBatch signs entries as author and returns the batch entry that goes
// before them. It is deterministic, so that a retry makes the same entry.
func SignBatch(key ed25519.PrivateKey, author string, entries []entry.Entry) entry.Entry {
	leaves := make([]merkle.Hash, len(entries))
	var latest time.Time
	for i := range entries {
		leaves[i] = entries[i].LeafHash()
		if entries[i].Time.After(latest) {
			latest = entries[i].Time
		}
	}
	sig := ed25519.Sign(key, BatchMessage(author, leaves))
	return BatchEntry(author, latest, leaves, sig)
}

// BatchEntry builds the batch entry of a signature: its id is a name-based
// UUID of its payload, its time the latest of its records'.
func BatchEntry(author string, at time.Time, leaves []merkle.Hash, sig []byte) entry.Entry {
	p := make([]byte, 0, 1+binary.MaxVarintLen32+len(leaves)*merkle.Size+ed25519.SignatureSize)
	p = append(p, batchFormat)
	p = binary.AppendUvarint(p, uint64(len(leaves)))
	for _, h := range leaves {
		p = append(p, h[:]...)
	}
	p = append(p, sig...)
	return entry.Entry{ID: uuid.NewSHA1(batchNamespace, p), Kind: KindBatch, Author: author, Time: at, Payload: p}
}

// DecodeBatch reads a batch payload. The signature aliases p.
func DecodeBatch(p []byte) (leaves []merkle.Hash, sig []byte, err error) {
	if len(p) == 0 || p[0] != batchFormat {
		return nil, nil, ErrMalformed
	}
	n, k := binary.Uvarint(p[1:])
	if k <= 0 || n == 0 || n > uint64(len(p))/merkle.Size {
		return nil, nil, ErrMalformed
	}
	rest := p[1+k:]
	if uint64(len(rest)) != n*merkle.Size+ed25519.SignatureSize {
		return nil, nil, ErrMalformed
	}
	leaves = make([]merkle.Hash, n)
	for i := range leaves {
		copy(leaves[i][:], rest[i*merkle.Size:])
	}
	return leaves, rest[n*merkle.Size:], nil
}
