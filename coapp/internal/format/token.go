package format

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// A token reads "coapp_<id>_<secret>": a 16-hex-digit id, by which it is
// found and revoked, and a 256-bit secret in base64url. The ledger stores
// only the SHA-256 of the secret.
const tokenPrefix = "coapp_"

// NewToken returns the token made of id and secret, and the operation that
// records it for member.
func NewToken(id [8]byte, secret [32]byte, member string, admin bool) (string, TokenOp) {
	idHex := hex.EncodeToString(id[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	h := sha256.Sum256([]byte(sec))
	return tokenPrefix + idHex + "_" + sec, TokenOp{Op: "create", ID: idHex, Hash: h[:], Member: member, Admin: admin}
}

// SplitToken returns a token's id and secret, and whether it has a
// token's shape.
func SplitToken(token string) (id, secret string, ok bool) {
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

// ValidTokenID reports whether id is a token id as NewToken makes them:
// 16 lower-case hex digits.
func ValidTokenID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
