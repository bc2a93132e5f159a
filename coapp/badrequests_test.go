package coapp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/client"
	"coapp.coop/consent"
)

// Who a bad request is sent as.
const (
	asAdmin   = "admin"   // coop-a's admin token, the founder's
	asMember  = "member"  // coop-b's token: not an admin, not a member of the federation
	asNobody  = "none"    // no Authorization header
	asRevoked = "revoked" // a token revoked in the setup
)

// goodRecord is a purchase record as JSON, with a new id, that the node
// would take; the rows change one thing in it.
func goodRecord() string {
	return `{"id":"` + uuid.NewString() + `","type":"purchase","subject":"anna@coop.example","time":"2026-11-01T10:00:00Z","fields":{"amount":3,"shop":"centro"}}`
}

// recordWith is goodRecord with old replaced by new.
func recordWith(old, new string) string {
	r := goodRecord()
	if !strings.Contains(r, old) {
		panic("recordWith: no " + old)
	}
	return strings.Replace(r, old, new, 1)
}

// records is a publish request of the records given as JSON.
func records(rs ...string) string { return `{"records":[` + strings.Join(rs, ",") + `]}` }

// TestBadRequestsTable sends 250-odd distinct bad requests over HTTP to a
// real node, to every POST route and to the query parameters of the GET
// routes, each on its own: malformed JSON, unknown fields, wrong types,
// numbers out of range, bad enumerations, missing fields, bytes that are
// not UTF-8, huge bodies, bad UUIDs and dates, empty arrays, strings too
// long, bad tokens, the wrong member. Each answer is checked: its status,
// its error code, the field it names, and that the ledger (read at leader
// consistency) did not grow. At the end a good record still goes in.
func TestBadRequestsTable(t *testing.T) {
	n, admin := bootstrapNode(t)
	c := client.New(n.URL(), admin)
	ctx := testCtx(t)

	// The setup: a record (whose id a row reuses), coop-b's token, a
	// revoked token, a member agreement and a subject's consent, a dataset
	// with a grant, and a proposal.
	published := record(1)
	if _, err := c.Publish(ctx, []client.Record{published}); err != nil {
		t.Fatal(err)
	}
	memberTok, err := c.CreateToken(ctx, "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := c.CreateToken(ctx, "coop-c", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	const purpose = "dpv:ResearchAndDevelopment"
	share := consentRequest("", purpose)
	share.Tier = consent.TierMember
	if _, err := c.GiveConsent(ctx, share); err != nil {
		t.Fatal(err)
	}
	given, err := c.GiveConsent(ctx, consentRequest("anna@coop.example", purpose))
	if err != nil {
		t.Fatal(err)
	}
	ds := Dataset{Name: "study", Purpose: purpose, Category: "pd:Purchase", K: 1,
		Types: []DatasetType{{Type: "purchase", Fields: []string{"amount", "shop"}}}}
	proposal := passes(t, ctx, Proposal{Kind: ProposeDataset, Dataset: &ds}, c, c)
	passes(t, ctx, Proposal{Kind: ProposeGrant, Grant: &Grant{Dataset: "study", Grantee: "coop-a", Purpose: purpose, Until: time.Now().Add(time.Hour)}}, c, c)

	tokens := map[string]string{asAdmin: admin, asMember: memberTok.Token, asRevoked: revoked.Token, asNobody: ""}
	conflict := strings.Replace(records(recordJSON(published)), `"amount":10`, `"amount":11`, 1)
	dupID := uuid.NewString()
	huge := records(recordWith(`"anna@coop.example"`, `"`+strings.Repeat("x", 5<<20)+`"`))
	manyFields := map[string]int{}
	for i := range api.MaxFields + 1 {
		manyFields[fmt.Sprintf("f%d", i)] = i
	}
	manyFieldsJSON, _ := json.Marshal(manyFields)
	sig64 := base64.StdEncoding.EncodeToString(make([]byte, 64))
	hash32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	consentJSON := func(old, new string) string {
		s := `{"subject":"anna@coop.example","purposes":["` + purpose + `"],"data_categories":["pd:Purchase"],"recipients":["federation"],` +
			`"notice":{"uri":"https://coop-a.example/notice/v3","sha256":"` + consent.Hash([]byte("notice v3")) + `"},` +
			`"language":"it","jurisdiction":"IT","withdrawal_method":"https://coop-a.example/consent","validity":{"duration":"P6M"}}`
		if old != "" {
			if !strings.Contains(s, old) {
				panic("consentJSON: no " + old)
			}
			s = strings.Replace(s, old, new, 1)
		}
		return s
	}
	schemaJSON := func(old, new string) string {
		s := `{"type":"harvest","version":1,"fields":[{"name":"kg","kind":"decimal","class":"attribute","min":0,"policy":{"action":"keep"}}]}`
		if !strings.Contains(s, old) {
			panic("schemaJSON: no " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
	datasetJSON := func(old, new string) string {
		s := `{"kind":"dataset","dataset":{"name":"other","purpose":"` + purpose + `","category":"pd:Purchase","k":2,"types":[{"type":"purchase","fields":["amount"]}]}}`
		if !strings.Contains(s, old) {
			panic("datasetJSON: no " + old)
		}
		return strings.Replace(s, old, new, 1)
	}
	signedJSON := func(kind, signer, at string) string {
		return `{"kind":"` + kind + `","signed":{"body":{},"signer":"` + signer + `","sig":"` + sig64 + `"},"at":"` + at + `"}`
	}
	now := time.Now().UTC().Format(time.RFC3339)
	consentPath := "/v1/consents/" + given.Record.String()
	proposalPath := "/v1/proposals/" + proposal.ID.String()

	tests := []struct {
		name, as, method, path, body string
		status                       int
		code, field                  string
	}{
		// POST /v1/records: the body as a whole.
		{"malformed JSON", asAdmin, "POST", "/v1/records", `{"records":[`, 400, "invalid", "body"},
		{"not JSON", asAdmin, "POST", "/v1/records", `records please`, 400, "invalid", "body"},
		{"empty body", asAdmin, "POST", "/v1/records", ``, 400, "invalid", "body"},
		{"JSON null", asAdmin, "POST", "/v1/records", `null`, 400, "invalid", "records"},
		{"a JSON array", asAdmin, "POST", "/v1/records", `[]`, 400, "invalid", "body"},
		{"trailing data", asAdmin, "POST", "/v1/records", records(goodRecord()) + ` {}`, 400, "invalid", "body"},
		{"a second JSON value", asAdmin, "POST", "/v1/records", records(goodRecord()) + records(goodRecord()), 400, "invalid", "body"},
		{"unknown top-level field", asAdmin, "POST", "/v1/records", `{"records":[` + goodRecord() + `],"extra":1}`, 400, "invalid", "extra"},
		{"records a string", asAdmin, "POST", "/v1/records", `{"records":"many"}`, 400, "invalid", "records"},
		{"records null", asAdmin, "POST", "/v1/records", `{"records":null}`, 400, "invalid", "records"},
		{"records empty", asAdmin, "POST", "/v1/records", `{"records":[]}`, 400, "invalid", "records"},
		{"a record a string", asAdmin, "POST", "/v1/records", `{"records":["x"]}`, 400, "invalid", "records[0]"},
		{"body too large", asAdmin, "POST", "/v1/records", huge, 413, "too_large", ""},
		{"not UTF-8 between values", asAdmin, "POST", "/v1/records", "{\"records\":[" + goodRecord() + "]\xff}", 400, "invalid", "body"},
		// A record's id.
		{"id missing", asAdmin, "POST", "/v1/records", records(`{"type":"purchase","subject":"a","time":"2026-11-01T10:00:00Z"}`), 400, "invalid", "records[0].id"},
		{"id not a UUID", asAdmin, "POST", "/v1/records", records(`{"id":"not-a-uuid"}`), 400, "invalid", "records[0].id"},
		{"id a path", asAdmin, "POST", "/v1/records", records(`{"id":"../../keys.json"}`), 400, "invalid", "records[0].id"},
		{"id with a zero-width space", asAdmin, "POST", "/v1/records", records(recordWith(`","type"`, "\u200b\",\"type\"")), 400, "invalid", "records[0].id"},
		{"id a number", asAdmin, "POST", "/v1/records", records(`{"id":42}`), 400, "invalid", "records[0].id"},
		{"id the nil UUID", asAdmin, "POST", "/v1/records", records(`{"id":"00000000-0000-0000-0000-000000000000","type":"purchase","subject":"a","time":"2026-11-01T10:00:00Z"}`), 400, "invalid", "records[0].id"},
		{"id one digit short", asAdmin, "POST", "/v1/records", records(`{"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c"}`), 400, "invalid", "records[0].id"},
		{"id repeated with other content in one batch", asAdmin, "POST", "/v1/records", records(`{"id":"`+dupID+`","type":"purchase","subject":"a","time":"2026-11-01T10:00:00Z","fields":{"amount":1}}`, `{"id":"`+dupID+`","type":"purchase","subject":"a","time":"2026-11-01T10:00:00Z","fields":{"amount":2}}`), 400, "invalid", "records[1].id"},
		{"id reused with other content", asAdmin, "POST", "/v1/records", conflict, 409, "conflict", "id"},
		// Its type and version.
		{"type missing", asAdmin, "POST", "/v1/records", records(recordWith(`"type":"purchase",`, ``)), 400, "invalid", "records[0].type"},
		{"type upper case", asAdmin, "POST", "/v1/records", records(recordWith(`"purchase"`, `"Purchase"`)), 400, "invalid", "records[0].type"},
		{"type too long", asAdmin, "POST", "/v1/records", records(recordWith(`"purchase"`, `"`+strings.Repeat("p", 65)+`"`)), 400, "invalid", "records[0].type"},
		{"type without a schema", asAdmin, "POST", "/v1/records", records(recordWith(`"purchase"`, `"harvest"`)), 400, "invalid", "records[0].type"},
		{"type a number", asAdmin, "POST", "/v1/records", records(recordWith(`"purchase"`, `7`)), 400, "invalid", "records[0].type"},
		{"version 0", asAdmin, "POST", "/v1/records", records(recordWith(`"type":`, `"version":0,"type":`)), 400, "invalid", "records[0].version"},
		{"version negative", asAdmin, "POST", "/v1/records", records(recordWith(`"type":`, `"version":-1,"type":`)), 400, "invalid", "records[0].version"},
		{"version a string", asAdmin, "POST", "/v1/records", records(recordWith(`"type":`, `"version":"1","type":`)), 400, "invalid", "records[0].version"},
		{"version a fraction", asAdmin, "POST", "/v1/records", records(recordWith(`"type":`, `"version":1.5,"type":`)), 400, "invalid", "records[0].version"},
		{"version beyond int", asAdmin, "POST", "/v1/records", records(recordWith(`"type":`, `"version":1e30,"type":`)), 400, "invalid", "records[0].version"},
		{"version not registered", asAdmin, "POST", "/v1/records", records(recordWith(`"type":`, `"version":2,"type":`)), 400, "invalid", "records[0].version"},
		// Its subject.
		{"subject missing", asAdmin, "POST", "/v1/records", records(recordWith(`"subject":"anna@coop.example",`, ``)), 400, "invalid", "records[0].subject"},
		{"subject empty", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, `""`)), 400, "invalid", "records[0].subject"},
		{"subject white space", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, `" \t\n "`)), 400, "invalid", "records[0].subject"},
		{"subject no-break spaces", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, "\"\u00a0\u3000\"")), 400, "invalid", "records[0].subject"},
		{"subject too long", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, `"`+strings.Repeat("a", 257)+`"`)), 400, "invalid", "records[0].subject"},
		{"subject with 0xff", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, "\"anna\xff@coop.example\"")), 400, "invalid", "records[0].subject"},
		{"subject with 0xfe", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, "\"anna\xfe@coop.example\"")), 400, "invalid", "records[0].subject"},
		{"subject with a truncated rune", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, "\"zo\xc3\"")), 400, "invalid", "records[0].subject"},
		{"subject with an encoded surrogate", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, "\"\xed\xa0\x80\"")), 400, "invalid", "records[0].subject"},
		{"subject with a lone surrogate escape", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, `"anna\udc00"`)), 400, "invalid", "records[0].subject"},
		{"subject a number", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, `12345`)), 400, "invalid", "records[0].subject"},
		{"subject an object", asAdmin, "POST", "/v1/records", records(recordWith(`"anna@coop.example"`, `{"email":"a"}`)), 400, "invalid", "records[0].subject"},
		// Its time.
		{"time missing", asAdmin, "POST", "/v1/records", records(recordWith(`"time":"2026-11-01T10:00:00Z",`, ``)), 400, "invalid", "records[0].time"},
		{"time in words", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `"yesterday"`)), 400, "invalid", "records[0].time"},
		{"time a date", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `"2026-11-01"`)), 400, "invalid", "records[0].time"},
		{"time without a zone", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `"2026-11-01T10:00:00"`)), 400, "invalid", "records[0].time"},
		{"time month 13", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `"2026-13-01T10:00:00Z"`)), 400, "invalid", "records[0].time"},
		{"time a number", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `1793527200`)), 400, "invalid", "records[0].time"},
		{"time in 1800", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `"1800-11-01T10:00:00Z"`)), 400, "invalid", "records[0].time"},
		{"time in 2300", asAdmin, "POST", "/v1/records", records(recordWith(`"2026-11-01T10:00:00Z"`, `"2300-11-01T10:00:00Z"`)), 400, "invalid", "records[0].time"},
		// Its fields.
		{"fields an array", asAdmin, "POST", "/v1/records", records(recordWith(`{"amount":3,"shop":"centro"}`, `[3]`)), 400, "invalid", "records[0].fields"},
		{"too many fields", asAdmin, "POST", "/v1/records", records(recordWith(`{"amount":3,"shop":"centro"}`, string(manyFieldsJSON))), 400, "invalid", "records[0].fields"},
		{"field not in the schema", asAdmin, "POST", "/v1/records", records(recordWith(`"shop"`, `"colour"`)), 400, "invalid", "records[0].fields.colour"},
		{"required field missing", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3,`, ``)), 400, "invalid", "records[0].fields.amount"},
		{"required field null", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3`, `"amount":null`)), 400, "invalid", "records[0].fields.amount"},
		{"amount a string", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3`, `"amount":"3"`)), 400, "invalid", "records[0].fields.amount"},
		{"amount below its minimum", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3`, `"amount":-0.01`)), 400, "invalid", "records[0].fields.amount"},
		{"amount above its maximum", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3`, `"amount":1000001`)), 400, "invalid", "records[0].fields.amount"},
		{"amount beyond float64", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3`, `"amount":1e400`)), 400, "invalid", "records[0].fields.amount"},
		{"amount a boolean", asAdmin, "POST", "/v1/records", records(recordWith(`"amount":3`, `"amount":true`)), 400, "invalid", "records[0].fields.amount"},
		{"shop a number", asAdmin, "POST", "/v1/records", records(recordWith(`"centro"`, `5`)), 400, "invalid", "records[0].fields.shop"},
		{"shop too long", asAdmin, "POST", "/v1/records", records(recordWith(`"centro"`, `"`+strings.Repeat("s", 1025)+`"`)), 400, "invalid", "records[0].fields.shop"},
		{"shop not UTF-8", asAdmin, "POST", "/v1/records", records(recordWith(`"centro"`, "\"caf\xe9\"")), 400, "invalid", "records[0].fields.shop"},
		{"unknown field in a record", asAdmin, "POST", "/v1/records", records(recordWith(`"type"`, `"colour":"red","type"`)), 400, "invalid", "records[0].colour"},
		// A bad record among good ones: nothing of the batch is written.
		{"third record bad time", asAdmin, "POST", "/v1/records", records(goodRecord(), goodRecord(), recordWith(`"2026-11-01T10:00:00Z"`, `"soon"`)), 400, "invalid", "records[2].time"},
		{"second record not UTF-8", asAdmin, "POST", "/v1/records", records(goodRecord(), recordWith(`"anna@coop.example"`, "\"b\xffb\"")), 400, "invalid", "records[1].subject"},
		{"second record version 0", asAdmin, "POST", "/v1/records", records(goodRecord(), recordWith(`"type":`, `"version":0,"type":`)), 400, "invalid", "records[1].version"},
		{"last record of five out of range", asAdmin, "POST", "/v1/records", records(goodRecord(), goodRecord(), goodRecord(), goodRecord(), recordWith(`"amount":3`, `"amount":-5`)), 400, "invalid", "records[4].fields.amount"},
		// Tokens.
		{"no token", asNobody, "POST", "/v1/records", records(goodRecord()), 401, "unauthenticated", ""},
		{"unknown token", "coapp_0123456789abcdef_" + strings.Repeat("A", 43), "POST", "/v1/records", records(goodRecord()), 401, "unauthenticated", ""},
		{"malformed token", "not-a-token", "POST", "/v1/records", records(goodRecord()), 401, "unauthenticated", ""},
		{"revoked token", asRevoked, "POST", "/v1/records", records(goodRecord()), 401, "unauthenticated", ""},
		{"admin token with a character changed", admin[:len(admin)-1] + string(admin[len(admin)-1]^1), "POST", "/v1/records", records(goodRecord()), 401, "unauthenticated", ""},

		// POST /v1/records/signed.
		{"signed: no records", asAdmin, "POST", "/v1/records/signed", `{"records":[],"signature":"` + sig64 + `","keys":[]}`, 400, "invalid", "records"},
		{"signed: signature too short", asAdmin, "POST", "/v1/records/signed", `{"records":[{"id":"` + uuid.NewString() + `","time":"2026-11-01T10:00:00Z","payload":"AAAA"}],"signature":"AAAA","keys":[]}`, 400, "invalid", "signature"},
		{"signed: signature not base64", asAdmin, "POST", "/v1/records/signed", `{"records":[],"signature":"%%%","keys":[]}`, 400, "invalid", "signature"},
		{"signed: payload not a record", asAdmin, "POST", "/v1/records/signed", `{"records":[{"id":"` + uuid.NewString() + `","time":"2026-11-01T10:00:00Z","payload":"AAAA"}],"signature":"` + sig64 + `","keys":[]}`, 400, "invalid", "records[0].payload"},
		{"signed: record id not a UUID", asAdmin, "POST", "/v1/records/signed", `{"records":[{"id":"x","time":"2026-11-01T10:00:00Z","payload":"AAAA"}],"signature":"` + sig64 + `","keys":[]}`, 400, "invalid", "records[0].id"},
		{"signed: key without a name", asAdmin, "POST", "/v1/records/signed", `{"records":[{"id":"` + uuid.NewString() + `","time":"2026-11-01T10:00:00Z","payload":"AAAA"}],"signature":"` + sig64 + `","keys":[{"hash":"` + hash32 + `"}]}`, 400, "invalid", "keys[0]"},
		{"signed: public key too short", asMember, "POST", "/v1/records/signed", `{"records":[{"id":"` + uuid.NewString() + `","time":"2026-11-01T10:00:00Z","payload":"AAAA"}],"signature":"` + sig64 + `","keys":[],"public_key":"AAAA"}`, 400, "invalid", "public_key"},
		{"signed: unknown field", asAdmin, "POST", "/v1/records/signed", `{"records":[],"signature":"","keys":[],"extra":true}`, 400, "invalid", "extra"},

		// POST /v1/cluster/join and the node routes.
		{"join: member token", asMember, "POST", "/v1/cluster/join", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"http://127.0.0.1:2","voter":true}`, 403, "forbidden", ""},
		{"join: no id", asAdmin, "POST", "/v1/cluster/join", `{"raft_addr":"127.0.0.1:1","http_addr":"http://127.0.0.1:2","voter":true}`, 400, "invalid", "id"},
		{"join: no raft address", asAdmin, "POST", "/v1/cluster/join", `{"id":"n9","http_addr":"http://127.0.0.1:2","voter":true}`, 400, "invalid", "raft_addr"},
		{"join: http address not a URL", asAdmin, "POST", "/v1/cluster/join", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2","voter":true}`, 400, "invalid", "http_addr"},
		{"join: removed", asAdmin, "POST", "/v1/cluster/join", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"http://127.0.0.1:2","voter":true,"removed":true}`, 400, "invalid", "removed"},
		{"join: voter a string", asAdmin, "POST", "/v1/cluster/join", `{"id":"n9","raft_addr":"127.0.0.1:1","http_addr":"http://127.0.0.1:2","voter":"yes"}`, 400, "invalid", "voter"},
		{"promote: unknown node", asAdmin, "POST", "/v1/cluster/nodes/n9/promote", ``, 404, "not_found", ""},
		{"promote: member token", asMember, "POST", "/v1/cluster/nodes/n0/promote", ``, 403, "forbidden", ""},
		{"remove node: member token", asMember, "DELETE", "/v1/cluster/nodes/n0", ``, 403, "forbidden", ""},

		// POST /v1/subjects/access, /erase, /exports.
		{"access: no subject", asAdmin, "POST", "/v1/subjects/access", `{}`, 400, "invalid", "subject"},
		{"access: subject white space", asAdmin, "POST", "/v1/subjects/access", `{"subject":"   "}`, 400, "invalid", "subject"},
		{"access: subject not UTF-8", asAdmin, "POST", "/v1/subjects/access", "{\"subject\":\"anna\xff@coop.example\"}", 400, "invalid", "subject"},
		{"access: subject too long", asAdmin, "POST", "/v1/subjects/access", `{"subject":"` + strings.Repeat("a", 257) + `"}`, 400, "invalid", "subject"},
		{"access: subject an array", asAdmin, "POST", "/v1/subjects/access", `{"subject":["anna"]}`, 400, "invalid", "subject"},
		{"access: unknown field", asAdmin, "POST", "/v1/subjects/access", `{"subject":"anna","email":"anna"}`, 400, "invalid", "email"},
		{"erase: subject not UTF-8", asAdmin, "POST", "/v1/subjects/erase", "{\"subject\":\"anna\xfe@coop.example\"}", 400, "invalid", "subject"},
		{"erase: subject empty", asAdmin, "POST", "/v1/subjects/erase", `{"subject":""}`, 400, "invalid", "subject"},
		{"erase: subject an ideographic space", asAdmin, "POST", "/v1/subjects/erase", "{\"subject\":\"\u3000\"}", 400, "invalid", "subject"},
		{"erase: malformed JSON", asAdmin, "POST", "/v1/subjects/erase", `{"subject":`, 400, "invalid", "body"},
		{"erase: no token", asNobody, "POST", "/v1/subjects/erase", `{"subject":"anna@coop.example"}`, 401, "unauthenticated", ""},
		{"exports of a subject: not UTF-8", asAdmin, "POST", "/v1/subjects/exports", "{\"subject\":\"\xc0\xaf\"}", 400, "invalid", "subject"},
		{"exports of a subject: white space", asAdmin, "POST", "/v1/subjects/exports", `{"subject":"\t"}`, 400, "invalid", "subject"},
		{"exports of a subject: bad consistency", asAdmin, "POST", "/v1/subjects/exports?consistency=eventual", `{"subject":"anna@coop.example"}`, 400, "invalid", "consistency"},

		// POST /v1/schemas.
		{"schema: member token", asMember, "POST", "/v1/schemas", schemaJSON(`"harvest"`, `"harvest"`), 403, "forbidden", ""},
		{"schema: bad type", asAdmin, "POST", "/v1/schemas", schemaJSON(`"harvest"`, `"Harvest Log"`), 400, "invalid", "type"},
		{"schema: version 0", asAdmin, "POST", "/v1/schemas", schemaJSON(`"version":1`, `"version":0`), 400, "invalid", "version"},
		{"schema: version 2 of a new type", asAdmin, "POST", "/v1/schemas", schemaJSON(`"version":1`, `"version":2`), 409, "conflict", "version"},
		{"schema: version 1 again", asAdmin, "POST", "/v1/schemas", schemaJSON(`"harvest"`, `"purchase"`), 409, "conflict", "version"},
		{"schema: bad subject domain", asAdmin, "POST", "/v1/schemas", schemaJSON(`"version":1,`, `"version":1,"subject_domain":"galaxy",`), 400, "invalid", "subject_domain"},
		{"schema: bad field name", asAdmin, "POST", "/v1/schemas", schemaJSON(`"kg"`, `"Kilograms"`), 400, "invalid", "fields[0].name"},
		{"schema: bad kind", asAdmin, "POST", "/v1/schemas", schemaJSON(`"decimal"`, `"float"`), 400, "invalid", "fields[0].kind"},
		{"schema: bad class", asAdmin, "POST", "/v1/schemas", schemaJSON(`"attribute"`, `"secret"`), 400, "invalid", "fields[0].class"},
		{"schema: bad action", asAdmin, "POST", "/v1/schemas", schemaJSON(`"keep"`, `"shred"`), 400, "invalid", "fields[0].policy.action"},
		{"schema: bad domain on keep", asAdmin, "POST", "/v1/schemas", schemaJSON(`"action":"keep"`, `"action":"keep","domain":"galaxy"`), 400, "invalid", "fields[0].policy.domain"},
		{"schema: negative width on keep", asAdmin, "POST", "/v1/schemas", schemaJSON(`"action":"keep"`, `"action":"keep","width":-1`), 400, "invalid", "fields[0].policy.width"},
		{"schema: direct identifier kept", asAdmin, "POST", "/v1/schemas", schemaJSON(`"attribute"`, `"direct"`), 400, "invalid", "fields[0].policy.action"},
		{"schema: min above max", asAdmin, "POST", "/v1/schemas", schemaJSON(`"min":0`, `"min":5,"max":1`), 400, "invalid", "fields[0].min"},
		{"schema: enum without values", asAdmin, "POST", "/v1/schemas", schemaJSON(`"decimal","class":"attribute","min":0`, `"enum","class":"attribute"`), 400, "invalid", "fields[0].values"},
		{"schema: a field twice", asAdmin, "POST", "/v1/schemas", schemaJSON(`]}`, `,{"name":"kg","kind":"string","class":"attribute","policy":{"action":"keep"}}]}`), 400, "invalid", "fields[1].name"},
		{"schema: date generalised to a fortnight", asAdmin, "POST", "/v1/schemas", schemaJSON(`"decimal","class":"attribute","min":0,"policy":{"action":"keep"}`, `"date","class":"quasi","policy":{"action":"generalise","unit":"fortnight"}`), 400, "invalid", "fields[0].policy.unit"},
		{"schema: fields an object", asAdmin, "POST", "/v1/schemas", `{"type":"harvest","version":1,"fields":{}}`, 400, "invalid", "fields"},
		{"schema: min a string", asAdmin, "POST", "/v1/schemas", schemaJSON(`"min":0`, `"min":"0"`), 400, "invalid", "fields[0].min"},

		// POST /v1/tokens, DELETE /v1/tokens/{id}.
		{"token: member token", asMember, "POST", "/v1/tokens", `{"member":"coop-x"}`, 403, "forbidden", ""},
		{"token: member with a space", asAdmin, "POST", "/v1/tokens", `{"member":"coop x"}`, 400, "invalid", "member"},
		{"token: member empty", asAdmin, "POST", "/v1/tokens", `{"member":""}`, 400, "invalid", "member"},
		{"token: member too long", asAdmin, "POST", "/v1/tokens", `{"member":"` + strings.Repeat("m", 65) + `"}`, 400, "invalid", "member"},
		{"token: member not UTF-8", asAdmin, "POST", "/v1/tokens", "{\"member\":\"coop\xff\"}", 400, "invalid", "member"},
		{"token: admin a string", asAdmin, "POST", "/v1/tokens", `{"member":"coop-x","admin":"yes"}`, 400, "invalid", "admin"},
		{"revoke token: id not hex", asAdmin, "DELETE", "/v1/tokens/zzzzzzzzzzzzzzzz", ``, 400, "invalid", "id"},
		{"revoke token: unknown id", asAdmin, "DELETE", "/v1/tokens/0123456789abcdef", ``, 404, "not_found", ""},

		// POST /v1/consents.
		{"consent: subject not UTF-8", asAdmin, "POST", "/v1/consents", consentJSON(`"anna@coop.example"`, "\"anna\xff@coop.example\""), 400, "invalid", "subject"},
		{"consent: subject white space", asAdmin, "POST", "/v1/consents", consentJSON(`"anna@coop.example"`, `"  "`), 400, "invalid", "subject"},
		{"consent: subject too long", asAdmin, "POST", "/v1/consents", consentJSON(`"anna@coop.example"`, `"`+strings.Repeat("a", 257)+`"`), 400, "invalid", "subject"},
		{"consent: no purposes", asAdmin, "POST", "/v1/consents", consentJSON(`["`+purpose+`"]`, `[]`), 400, "invalid", "purposes"},
		{"consent: purpose not a term", asAdmin, "POST", "/v1/consents", consentJSON(`"`+purpose+`"`, `"research"`), 400, "invalid", "purposes[0]"},
		{"consent: unknown purpose", asAdmin, "POST", "/v1/consents", consentJSON(`"`+purpose+`"`, `"dpv:Snooping"`), 400, "unknown_purpose", "purposes[0]"},
		{"consent: bad tier", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"tier":"robot","subject"`), 400, "invalid", "tier"},
		{"consent: member tier with a subject", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"tier":"member","subject"`), 400, "invalid", "subject"},
		{"consent: bad legal basis", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"legal_basis":"dpv:Whim","subject"`), 400, "invalid", "legal_basis"},
		{"consent: notice hash not hex", asAdmin, "POST", "/v1/consents", consentJSON(`"sha256":"`, `"sha256":"zz`), 400, "invalid", "notice.sha256"},
		{"consent: jurisdiction too long", asAdmin, "POST", "/v1/consents", consentJSON(`"jurisdiction":"IT"`, `"jurisdiction":"`+strings.Repeat("X", 17)+`"`), 400, "invalid", "jurisdiction"},
		{"consent: no data categories", asAdmin, "POST", "/v1/consents", consentJSON(`"data_categories":["pd:Purchase"],`, ``), 400, "invalid", "data_categories"},
		{"consent: duration not ISO 8601", asAdmin, "POST", "/v1/consents", consentJSON(`"P6M"`, `"six months"`), 400, "invalid", "validity.duration"},
		{"consent: until and duration", asAdmin, "POST", "/v1/consents", consentJSON(`"duration":"P6M"`, `"duration":"P6M","until":"2030-01-01T00:00:00Z"`), 400, "invalid", "validity"},
		{"consent: id not a UUID", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"id":"consent-1","subject"`), 400, "invalid", "id"},
		{"consent: id of a record that exists", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"id":"`+given.Record.String()+`","subject"`), 409, "conflict", "record"},
		{"consent: at not a time", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"at":"now","subject"`), 400, "invalid", "at"},
		{"consent: at in 1066", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"at":"1066-10-14T09:00:00Z","subject"`), 400, "invalid", "at"},
		{"consent: unknown field", asAdmin, "POST", "/v1/consents", consentJSON(`{"subject"`, `{"colour":"red","subject"`), 400, "invalid", "colour"},
		{"consent: recipients 33", asAdmin, "POST", "/v1/consents", consentJSON(`"recipients":["federation"]`, `"recipients":[`+strings.Repeat(`"r",`, 32)+`"r"]`), 400, "invalid", "recipients"},

		// POST /v1/consents/events.
		{"consent event: payload not base64", asAdmin, "POST", "/v1/consents/events", `{"payload":"not base64!"}`, 400, "invalid", "payload"},
		{"consent event: payload not a signed event", asAdmin, "POST", "/v1/consents/events", `{"payload":"` + base64.StdEncoding.EncodeToString([]byte("hello")) + `"}`, 400, "invalid", "payload"},
		{"consent event: unknown field", asAdmin, "POST", "/v1/consents/events", `{"payload":"","signer":"coop-a"}`, 400, "invalid", "signer"},

		// POST /v1/consents/list, /check, /verify, /{id}/{action}.
		{"consent list: subject not UTF-8", asAdmin, "POST", "/v1/consents/list", "{\"subject\":\"\xff\"}", 400, "invalid", "subject"},
		{"consent list: no subject", asAdmin, "POST", "/v1/consents/list", `{}`, 400, "invalid", "subject"},
		{"check: no purpose", asAdmin, "POST", "/v1/consents/check", `{"subject":"anna@coop.example"}`, 400, "invalid", "purpose"},
		{"check: unknown purpose", asAdmin, "POST", "/v1/consents/check", `{"subject":"anna@coop.example","purpose":"dpv:Snooping"}`, 400, "unknown_purpose", "purpose"},
		{"check: category not a term", asAdmin, "POST", "/v1/consents/check", `{"subject":"anna@coop.example","purpose":"` + purpose + `","category":"purchases"}`, 400, "invalid", "category"},
		{"check: as_of beyond the ledger", asAdmin, "POST", "/v1/consents/check", `{"subject":"anna@coop.example","purpose":"` + purpose + `","as_of":1000000}`, 400, "invalid", "as_of"},
		{"check: as_of negative", asAdmin, "POST", "/v1/consents/check", `{"subject":"anna@coop.example","purpose":"` + purpose + `","as_of":-1}`, 400, "invalid", "as_of"},
		{"check: at not a time", asAdmin, "POST", "/v1/consents/check", `{"subject":"anna@coop.example","purpose":"` + purpose + `","at":"noon"}`, 400, "invalid", "at"},
		{"check: subject white space", asAdmin, "POST", "/v1/consents/check", `{"subject":" ","purpose":"` + purpose + `"}`, 400, "invalid", "subject"},
		{"verify: receipt a string", asAdmin, "POST", "/v1/consents/verify", `{"receipt":"yes"}`, 400, "invalid", "receipt"},
		{"verify: root not a hash", asAdmin, "POST", "/v1/consents/verify", `{"receipt":{"root":"abc"}}`, 400, "invalid", "receipt.root"},
		{"verify: entry id not a UUID", asAdmin, "POST", "/v1/consents/verify", `{"receipt":{"entry":{"id":"e1"}}}`, 400, "invalid", "receipt.entry.id"},
		{"change consent: id not a UUID", asAdmin, "POST", "/v1/consents/c1/withdraw", `{}`, 400, "invalid", "id"},
		{"change consent: unknown action", asAdmin, "POST", consentPath + "/forget", `{}`, 400, "invalid", "action"},
		{"change consent: unknown record", asAdmin, "POST", "/v1/consents/" + uuid.NewString() + "/withdraw", `{}`, 404, "not_found", "record"},
		{"change consent: withdraw with a validity", asAdmin, "POST", consentPath + "/withdraw", `{"validity":{"duration":"P1M"}}`, 400, "invalid", "validity"},
		{"change consent: another member's record", asMember, "POST", consentPath + "/withdraw", `{}`, 403, "forbidden", "record"},
		{"change consent: at not a time", asAdmin, "POST", consentPath + "/withdraw", `{"at":"later"}`, 400, "invalid", "at"},
		{"change consent: renew without validity", asAdmin, "POST", consentPath + "/renew", `{}`, 400, "invalid", "validity"},

		// POST /v1/purposes, /v1/members/{id}/key/rotate.
		{"purpose: member token", asMember, "POST", "/v1/purposes", `{"id":"coop:Study","label":"A study"}`, 403, "forbidden", ""},
		{"purpose: id not a term", asAdmin, "POST", "/v1/purposes", `{"id":"study","label":"A study"}`, 400, "invalid", "id"},
		{"purpose: no label", asAdmin, "POST", "/v1/purposes", `{"id":"coop:Study"}`, 400, "invalid", "label"},
		{"purpose: unknown parent", asAdmin, "POST", "/v1/purposes", `{"id":"coop:Study","label":"A study","parent":"coop:Nothing"}`, 400, "unknown_purpose", "parent"},
		{"purpose: defined already", asAdmin, "POST", "/v1/purposes", `{"id":"` + purpose + `","label":"again"}`, 409, "conflict", "id"},
		{"rotate: another member's key", asMember, "POST", "/v1/members/coop-a/key/rotate", ``, 403, "forbidden", ""},

		// POST /v1/proposals, /v1/proposals/{id}/votes, /v1/signed.
		{"propose: bad kind", asAdmin, "POST", "/v1/proposals", `{"kind":"coup"}`, 400, "invalid", "kind"},
		{"propose: member id with a space", asAdmin, "POST", "/v1/proposals", `{"kind":"admit-member","member":"coop x"}`, 400, "invalid", "member"},
		{"propose: id not a UUID", asAdmin, "POST", "/v1/proposals", `{"id":"p1","kind":"admit-member","member":"coop-x"}`, 400, "invalid", "id"},
		{"propose: not a member", asMember, "POST", "/v1/proposals", `{"kind":"admit-member","member":"coop-x"}`, 403, "forbidden", ""},
		{"propose: dataset k 0", asAdmin, "POST", "/v1/proposals", datasetJSON(`"k":2`, `"k":0`), 400, "invalid", "dataset.k"},
		{"propose: dataset k 1001", asAdmin, "POST", "/v1/proposals", datasetJSON(`"k":2`, `"k":1001`), 400, "invalid", "dataset.k"},
		{"propose: dataset name upper case", asAdmin, "POST", "/v1/proposals", datasetJSON(`"other"`, `"Other"`), 400, "invalid", "dataset.name"},
		{"propose: dataset without types", asAdmin, "POST", "/v1/proposals", datasetJSON(`[{"type":"purchase","fields":["amount"]}]`, `[]`), 400, "invalid", "dataset.types"},
		{"propose: dataset of an unknown field", asAdmin, "POST", "/v1/proposals", datasetJSON(`["amount"]`, `["weight"]`), 400, "invalid", "dataset.types[0].fields[0]"},
		{"propose: dataset budget 101", asAdmin, "POST", "/v1/proposals", datasetJSON(`"k":2`, `"k":2,"dp_budget":101`), 400, "invalid", "dataset.dp_budget"},
		{"propose: transform width negative", asAdmin, "POST", "/v1/proposals", datasetJSON(`"fields":["amount"]`, `"fields":["amount"],"transforms":{"amount":{"action":"drop","width":-1}}`), 400, "invalid", "dataset.types[0].transforms.amount.width"},
		{"propose: transform action bad", asAdmin, "POST", "/v1/proposals", datasetJSON(`"fields":["amount"]`, `"fields":["amount"],"transforms":{"amount":{"action":"blur"}}`), 400, "invalid", "dataset.types[0].transforms.amount"},
		{"propose: dataset that exists", asAdmin, "POST", "/v1/proposals", datasetJSON(`"other"`, `"study"`), 400, "invalid", "dataset.name"},
		{"propose: grant without until", asAdmin, "POST", "/v1/proposals", `{"kind":"grant","grant":{"dataset":"study","grantee":"coop-b","purpose":"` + purpose + `"}}`, 400, "invalid", "grant.until"},
		{"vote: maybe", asAdmin, "POST", proposalPath + "/votes", `{"choice":"maybe"}`, 400, "invalid", "choice"},
		{"vote: proposal id not a UUID", asAdmin, "POST", "/v1/proposals/p1/votes", `{"choice":"yes"}`, 400, "invalid", "id"},
		{"vote: unknown proposal", asAdmin, "POST", "/v1/proposals/" + uuid.NewString() + "/votes", `{"choice":"yes"}`, 404, "not_found", ""},
		{"vote: closed proposal", asAdmin, "POST", proposalPath + "/votes", `{"choice":"no"}`, 409, "conflict", ""},
		{"vote: not a member", asMember, "POST", proposalPath + "/votes", `{"choice":"yes"}`, 403, "forbidden", ""},
		{"signed: bad kind", asAdmin, "POST", "/v1/signed", signedJSON("coapp.record/v1", "coop-a", now), 400, "invalid", "kind"},
		{"signed: signed by another member", asAdmin, "POST", "/v1/signed", signedJSON("coapp.vote/v1", "coop-b", now), 403, "forbidden", ""},
		{"signed: dated a day ago", asAdmin, "POST", "/v1/signed", signedJSON("coapp.vote/v1", "coop-a", time.Now().Add(-24*time.Hour).UTC().Format(time.RFC3339)), 400, "invalid", "at"},
		{"signed: bad signature", asAdmin, "POST", "/v1/signed", signedJSON("coapp.vote/v1", "coop-a", now), 400, "bad_signature", ""},

		// POST /v1/datasets/{name}/export and /aggregate.
		{"export: format xml", asAdmin, "POST", "/v1/datasets/study/export", `{"purpose":"` + purpose + `","format":"xml"}`, 400, "invalid", "format"},
		{"export: no purpose", asAdmin, "POST", "/v1/datasets/study/export", `{}`, 400, "invalid", "purpose"},
		{"export: another dataset in the body", asAdmin, "POST", "/v1/datasets/study/export", `{"dataset":"other","purpose":"` + purpose + `"}`, 400, "invalid", "dataset"},
		{"export: as_of beyond the ledger", asAdmin, "POST", "/v1/datasets/study/export", `{"purpose":"` + purpose + `","as_of":1000000}`, 400, "invalid", "as_of"},
		{"export: as_of a string", asAdmin, "POST", "/v1/datasets/study/export", `{"purpose":"` + purpose + `","as_of":"1"}`, 400, "invalid", "as_of"},
		{"export: unknown dataset", asAdmin, "POST", "/v1/datasets/nothing/export", `{"purpose":"` + purpose + `"}`, 404, "not_found", ""},
		{"export: no grant for the purpose", asAdmin, "POST", "/v1/datasets/study/export", `{"purpose":"dpv:Marketing"}`, 403, "forbidden", ""},
		{"export: no grant for the member", asMember, "POST", "/v1/datasets/study/export", `{"purpose":"` + purpose + `"}`, 403, "forbidden", ""},
		{"aggregate: op median", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"median"}`, 400, "invalid", "op"},
		{"aggregate: no purpose", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"op":"count"}`, 400, "invalid", "purpose"},
		{"aggregate: group by an unknown field", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"count","group_by":["weight"]}`, 400, "invalid", "group_by[0]"},
		{"aggregate: sum without a field", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"sum"}`, 400, "invalid", "field"},
		{"aggregate: epsilon 0", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"count","dp":{"epsilon":0}}`, 400, "invalid", "dp.epsilon"},
		{"aggregate: epsilon 11", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"count","dp":{"epsilon":11}}`, 400, "invalid", "dp.epsilon"},
		{"aggregate: max contributions 1001", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"count","dp":{"epsilon":1,"max_contributions":1001}}`, 400, "invalid", "dp.max_contributions"},
		{"aggregate: dp a number", asAdmin, "POST", "/v1/datasets/study/aggregate", `{"purpose":"` + purpose + `","op":"count","dp":1}`, 400, "invalid", "dp"},
		{"aggregate: unknown dataset", asAdmin, "POST", "/v1/datasets/nothing/aggregate", `{"purpose":"` + purpose + `","op":"count"}`, 404, "not_found", ""},

		// The query parameters of the GET routes.
		{"ledger: consistency strong", asAdmin, "GET", "/v1/ledger?consistency=strong", ``, 400, "invalid", "consistency"},
		{"ledger: consistency upper case", asAdmin, "GET", "/v1/ledger?consistency=LEADER", ``, 400, "invalid", "consistency"},
		{"record: id not a UUID", asAdmin, "GET", "/v1/records/nope", ``, 400, "invalid", "id"},
		{"record: bad consistency", asAdmin, "GET", "/v1/records/" + published.ID.String() + "?consistency=eventual", ``, 400, "invalid", "consistency"},
		{"record: unknown", asAdmin, "GET", "/v1/records/" + uuid.NewString(), ``, 404, "not_found", ""},
		{"inclusion: index negative", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=-1&size=5", ``, 400, "invalid", "index"},
		{"inclusion: index not a number", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=one&size=5", ``, 400, "invalid", "index"},
		{"inclusion: size 0", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=0&size=0", ``, 400, "invalid", "size"},
		{"inclusion: index past size", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=5&size=5", ``, 400, "invalid", "index"},
		{"inclusion: no size", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=1", ``, 400, "invalid", "size"},
		{"inclusion: size past the log", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=1&size=5000", ``, 400, "out_of_range", ""},
		{"inclusion: size beyond uint64", asAdmin, "GET", "/v1/ledger/proofs/inclusion?index=1&size=18446744073709551616", ``, 400, "invalid", "size"},
		{"consistency proof: from above to", asAdmin, "GET", "/v1/ledger/proofs/consistency?from=5&to=2", ``, 400, "invalid", "from"},
		{"consistency proof: no to", asAdmin, "GET", "/v1/ledger/proofs/consistency?from=1", ``, 400, "invalid", "to"},
		{"consistency proof: from a word", asAdmin, "GET", "/v1/ledger/proofs/consistency?from=start&to=2", ``, 400, "invalid", "from"},
		{"shares: from month 13", asAdmin, "GET", "/v1/datasets/study/shares?from=2026-13-01", ``, 400, "invalid", "from"},
		{"shares: to a time", asAdmin, "GET", "/v1/datasets/study/shares?to=2026-11-01T00:00:00Z", ``, 400, "invalid", "to"},
		{"shares: to before from", asAdmin, "GET", "/v1/datasets/study/shares?from=2026-11-02&to=2026-11-01", ``, 400, "invalid", "to"},
		{"shares: bad consistency", asAdmin, "GET", "/v1/datasets/study/shares?consistency=x", ``, 400, "invalid", "consistency"},
		{"shares: unknown dataset", asAdmin, "GET", "/v1/datasets/nothing/shares", ``, 404, "not_found", ""},
		{"audit: bad consistency", asAdmin, "GET", "/v1/datasets/study/audit?consistency=x", ``, 400, "invalid", "consistency"},
		{"dataset: unknown", asAdmin, "GET", "/v1/datasets/nothing", ``, 404, "not_found", ""},
		{"dataset: bad consistency", asAdmin, "GET", "/v1/datasets/study?consistency=x", ``, 400, "invalid", "consistency"},
		{"datasets: bad consistency", asAdmin, "GET", "/v1/datasets?consistency=x", ``, 400, "invalid", "consistency"},
		{"members: bad consistency", asAdmin, "GET", "/v1/members?consistency=x", ``, 400, "invalid", "consistency"},
		{"proposals: bad consistency", asAdmin, "GET", "/v1/proposals?consistency=x", ``, 400, "invalid", "consistency"},
		{"proposal: id not a UUID", asAdmin, "GET", "/v1/proposals/p1", ``, 400, "invalid", "id"},
		{"proposal: bad consistency", asAdmin, "GET", proposalPath + "?consistency=x", ``, 400, "invalid", "consistency"},
		{"get consent: id not a UUID", asAdmin, "GET", "/v1/consents/c1", ``, 400, "invalid", "id"},
		{"get consent: another member's", asMember, "GET", consentPath, ``, 403, "forbidden", "id"},
		{"erasure: id 0", asAdmin, "GET", "/v1/subjects/erasures/0", ``, 400, "invalid", "id"},
		{"erasure: id a word", asAdmin, "GET", "/v1/subjects/erasures/latest", ``, 400, "invalid", "id"},
		{"erasure: local maybe", asAdmin, "GET", "/v1/subjects/erasures/5?local=maybe", ``, 400, "invalid", "local"},
		{"schema: unknown type", asAdmin, "GET", "/v1/schemas/harvest", ``, 404, "not_found", ""},
		{"backup: member token", asMember, "GET", "/v1/backup", ``, 403, "forbidden", ""},
		{"unknown route", asAdmin, "GET", "/v1/nothing", ``, 404, "not_found", ""},
	}

	seen := map[string]bool{}
	for _, tt := range tests {
		if seen[tt.name] {
			t.Fatalf("two rows are named %q", tt.name)
		}
		seen[tt.name] = true
	}
	if len(tests) < 100 {
		t.Fatalf("only %d rows", len(tests))
	}
	size := func() uint64 {
		t.Helper()
		li, err := c.Ledger(ctx, "leader")
		if err != nil {
			t.Fatal(err)
		}
		return li.Size
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := size()
			token, ok := tokens[tt.as]
			if !ok {
				token = tt.as // a token given as it is
			}
			status, body := send(t, tt.method, n.URL()+tt.path, token, tt.body)
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code == "" {
				t.Fatalf("status %d, body %.200q is not the error JSON", status, body)
			}
			e := eb.Error
			if status != tt.status || e.Code != tt.code || e.Field != tt.field {
				t.Errorf("status %d code %q field %q (%s); want %d %q %q", status, e.Code, e.Field, e.Message, tt.status, tt.code, tt.field)
			}
			if e.Message == "" {
				t.Error("no message")
			}
			if strings.Contains(e.Message, "anna") || strings.Contains(e.Message, "keys.json") {
				t.Errorf("the message repeats the input: %q", e.Message)
			}
			if after := size(); after != before {
				t.Errorf("the ledger grew from %d to %d entries", before, after)
			}
		})
	}

	// A good record still goes in, over the same route.
	before := size()
	status, body := send(t, "POST", n.URL()+"/v1/records", admin, records(goodRecord()))
	var ok api.PublishResponse
	if status != http.StatusOK || json.Unmarshal(body, &ok) != nil || len(ok.Receipts) != 1 {
		t.Fatalf("a good record: status %d, %s", status, body)
	}
	if after := size(); after != before+2 { // the batch's signature and the record
		t.Errorf("a good record: the ledger went from %d to %d entries, want %d", before, after, before+2)
	}
}

// send makes one request with a raw body and returns its status and body.
func send(t *testing.T, method, url, token, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBadBatchWritesNothing sends batches with one bad record among good
// ones, through a follower (which seals and signs there, then hands the
// batch to the leader) and to the leader, as a member whose key is in the
// ledger and as one publishing for the first time (whose key would enter
// the ledger with its batch): none writes anything, not the good records,
// not the batch's signature, not the member's key. A record whose id the
// ledger holds with other content is found only by the leader's append;
// the whole batch fails with it.
func TestBadBatchWritesNothing(t *testing.T) {
	n, admin := bootstrapNode(t)
	ctx := testCtx(t)
	c := client.New(n.URL(), admin)
	existing := record(1)
	if _, err := c.Publish(ctx, []client.Record{existing}); err != nil {
		t.Fatal(err)
	}
	f := joinNode(t, "n1", n, admin, false)
	newcomer, err := c.CreateToken(ctx, "coop-b", false)
	if err != nil {
		t.Fatal(err)
	}
	conflicting := strings.Replace(recordJSON(existing), `"amount":10`, `"amount":11`, 1)
	batches := []struct {
		name, body string
		status     int
		field      string
	}{
		{"third not UTF-8", records(goodRecord(), goodRecord(), recordWith(`"anna@coop.example"`, "\"anna\xff@coop.example\"")), 400, "records[2].subject"},
		{"second version 0", records(goodRecord(), recordWith(`"type":`, `"version":0,"type":`), goodRecord()), 400, "records[1].version"},
		{"second of no schema", records(goodRecord(), recordWith(`"purchase"`, `"harvest"`)), 400, "records[1].type"},
		{"second out of range", records(goodRecord(), recordWith(`"amount":3`, `"amount":-1`)), 400, "records[1].fields.amount"},
		{"second an id in the ledger with other content", records(goodRecord(), conflicting, goodRecord()), 409, "id"},
	}
	size := func() uint64 {
		t.Helper()
		li, err := c.Ledger(ctx, "leader")
		if err != nil {
			t.Fatal(err)
		}
		return li.Size
	}
	for _, via := range []struct {
		name string
		node *Node
	}{{"leader", n}, {"follower", f}} {
		for _, who := range []struct{ name, token string }{{"coop-a", admin}, {"coop-b, first batch", newcomer.Token}} {
			for _, b := range batches {
				t.Run(via.name+"/"+who.name+"/"+b.name, func(t *testing.T) {
					before := size()
					status, body := send(t, "POST", via.node.URL()+"/v1/records", who.token, b.body)
					var eb api.ErrorBody
					if err := json.Unmarshal(body, &eb); err != nil || status != b.status || eb.Error.Field != b.field {
						t.Errorf("status %d, %s; want %d on %s", status, body, b.status, b.field)
					}
					if after := size(); after != before {
						t.Errorf("the ledger grew from %d to %d entries", before, after)
					}
				})
			}
		}
	}
	// coop-b's key is still not in the ledger; its good batch brings it.
	if _, err := c.MemberKey(ctx, "coop-b"); apiStatus(err) != http.StatusNotFound {
		t.Errorf("coop-b's key after refused batches: %v, want 404", err)
	}
	before := size()
	status, body := send(t, "POST", f.URL()+"/v1/records", newcomer.Token, records(goodRecord(), goodRecord()))
	if status != http.StatusOK {
		t.Fatalf("a good batch through the follower: %d %s", status, body)
	}
	if after := size(); after != before+4 { // coop-b's key, the signature, two records
		t.Errorf("a good batch: the ledger went from %d to %d entries, want %d", before, after, before+4)
	}
}
