package pseudonym_test

import (
	"fmt"

	"coapp.coop/pseudonym"
)

func Example() {
	// A fixed secret for the example; a federation uses NewSecret once and
	// keeps it in a key file.
	secret, _ := pseudonym.SecretFromBytes([]byte("0123456789abcdef0123456789abcdef"))
	keys, _ := pseudonym.NewKeyring(1, secret)

	a, _ := keys.Pseudonym(pseudonym.MemberDomain("coop-a"), "Anna.Rossi@example.org")
	again, _ := keys.Pseudonym(pseudonym.MemberDomain("coop-a"), "  anna.rossi@EXAMPLE.org")
	b, _ := keys.Pseudonym(pseudonym.MemberDomain("coop-b"), "anna.rossi@example.org")

	fmt.Println("coop-a:", a)
	fmt.Println("same person, other spelling, same pseudonym:", a == again)
	fmt.Println("coop-b sees another pseudonym:", a != b)
	fmt.Println("the secret prints as", secret)
	// Output:
	// coop-a: ps1.1.xM9_Dq81pstpt_ZWu3Bv7-doLk2Wa2hwFpOkReUiQcA
	// same person, other spelling, same pseudonym: true
	// coop-b sees another pseudonym: true
	// the secret prints as pseudonym.Secret(REDACTED)
}
