package consent_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"coapp.coop/consent"
)

// A person gives consent for research to their cooperative, which agreed to
// share purchases into the federation; research uses are then allowed,
// until the person withdraws.
func Example() {
	vocab := consent.NewVocabulary()
	x := consent.NewIndex(vocab)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	notice := consent.Notice{URI: "https://coop-a.example/notice", SHA256: consent.Hash([]byte("the notice's text"))}

	// Events are applied in ledger order, at their ledger index; the node
	// does this for every consent entry it applies.
	apply := func(index uint64, e *consent.Event) []byte {
		b := mustEncode(e)
		if err := x.Apply(index, "coop-a", e, b); err != nil {
			panic(err)
		}
		return b
	}
	share := &consent.Record{ID: uuid.New(), SchemaVersion: consent.SchemaVersion, Tier: consent.TierMember, Controller: "coop-a",
		Purposes: []string{"dpv:ResearchAndDevelopment"}, LegalBasis: "dpv:Consent", DataCategories: []string{"pd:Purchase"},
		Notice: notice, Jurisdiction: "IT", WithdrawalMethod: "a vote of coop-a's board"}
	apply(1, &consent.Event{Record: share.ID, Type: consent.Given, At: at, By: "coop-a", Consent: share, Validity: &consent.Validity{From: at}})

	anna := &consent.Record{ID: uuid.New(), SchemaVersion: consent.SchemaVersion, Tier: consent.TierSubject, Subject: "ps1.1.anna", Controller: "coop-a",
		Purposes: []string{"dpv:ResearchAndDevelopment"}, LegalBasis: "dpv:Consent", DataCategories: []string{"pd:Purchase"},
		Notice: notice, Jurisdiction: "IT", WithdrawalMethod: "https://coop-a.example/consent"}
	given := apply(2, &consent.Event{Record: anna.ID, Type: consent.Given, At: at, By: "subject", Consent: anna, Validity: &consent.Validity{From: at, Duration: "P1Y"}})

	later := at.AddDate(0, 1, 0)
	fmt.Println(x.Usable("ps1.1.anna", "coop-a", "pd:Purchase", "dpv:AcademicResearch", later, consent.Latest).Reason)
	fmt.Println(x.Usable("ps1.1.anna", "coop-a", "pd:Purchase", "dpv:Marketing", later, consent.Latest).Reason)

	apply(3, &consent.Event{Record: anna.ID, Type: consent.Withdrawn, At: later, By: "subject", Prev: consent.Hash(given)})
	fmt.Println(x.Usable("ps1.1.anna", "coop-a", "pd:Purchase", "dpv:AcademicResearch", later, consent.Latest).Reason)
	fmt.Println(x.Usable("ps1.1.anna", "coop-a", "pd:Purchase", "dpv:AcademicResearch", later, 2).Reason)
	// Output:
	// granted
	// no-consent
	// withdrawn
	// granted
}

func mustEncode(e *consent.Event) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return b
}
