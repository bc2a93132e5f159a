package coapp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// A token reads "coapp_<id>_<secret>": a 16-hex-digit id, by which it is
// found and revoked, and a 256-bit secret in base64url. The ledger stores
// only the SHA-256 of the secret.
const tokenPrefix = "coapp_"

// newToken returns a new token and the operation that records it.
func newToken(member string, admin bool) (string, tokenOp, error) {
	var id [8]byte
	var secret [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", tokenOp{}, err
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", tokenOp{}, err
	}
	idHex := hex.EncodeToString(id[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	h := sha256.Sum256([]byte(sec))
	return tokenPrefix + idHex + "_" + sec, tokenOp{Op: "create", ID: idHex, Hash: h[:], Member: member, Admin: admin}, nil
}

// splitToken returns a token's id and secret.
func splitToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 || len(secret) != 43 {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, secret, true
}
