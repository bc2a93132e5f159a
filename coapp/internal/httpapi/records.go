package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
	"coapp.coop/ledger"
	"coapp.coop/ledger/merkle"
)

func (a *API) publish(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	req, err := api.DecodePublish(r.Body)
	if err != nil {
		return err
	}
	rs, err := a.svc.Publish(r.Context(), c, req.Records)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.PublishResponse{Receipts: rs})
}

func (a *API) publishSigned(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if !a.svc.IsLeader() {
		return a.forward(w, r)
	}
	var b api.SealedBatch
	if err := decode(r, &b); err != nil {
		return err
	}
	rs, err := a.svc.AppendSealed(r.Context(), c, b)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, api.PublishResponse{Receipts: rs})
}

// consistencyOf reads ?consistency=stale|leader|linearizable.
func consistencyOf(r *http.Request) (ledger.Consistency, error) {
	c, err := ledger.ParseConsistency(r.URL.Query().Get("consistency"))
	if err != nil {
		return 0, api.Invalid("consistency", "not one of stale, leader, linearizable")
	}
	return c, nil
}

// read runs fn at the request's consistency, on this node or, for leader
// and linearizable reads on a follower, on the leader.
func (a *API) read(w http.ResponseWriter, r *http.Request, fn func(v *ledger.View) (any, error)) error {
	c, err := consistencyOf(r)
	if err != nil {
		return err
	}
	if c != ledger.Stale && !a.svc.IsLeader() {
		return a.forward(w, r)
	}
	var out any
	err = a.svc.Ledger().Read(r.Context(), c, func(v *ledger.View) error {
		var err error
		out, err = fn(v)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func queryUint(r *http.Request, name string) (uint64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return 0, api.Invalid(name, "required")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, api.Invalid(name, "not a non-negative integer")
	}
	return v, nil
}

func (a *API) record(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return api.Invalid("id", "not a UUID")
	}
	a.svc.AwaitView(r.Context()) // for its refusal, if any
	return a.read(w, r, func(v *ledger.View) (any, error) {
		e, rc, err := v.ByID(id)
		if err != nil {
			return nil, err
		}
		if e.Kind != format.KindRecord {
			return nil, api.ErrNotFound
		}
		p, err := format.DecodeRecordPayload(e.Payload)
		if err != nil {
			return nil, err
		}
		info := api.RecordInfo{
			Receipt: api.Receipt{ID: rc.ID, Index: rc.Index, Leaf: rc.Leaf},
			Type:    p.Type, Version: p.Version, Time: e.Time, Member: e.Author,
		}
		if err := a.svc.State().RecordRefusal(rc.Index); err != nil {
			info.Refused = strings.TrimPrefix(err.Error(), "coapp: ")
		}
		return info, nil
	})
}

func (a *API) ledgerInfo(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	return a.read(w, r, func(v *ledger.View) (any, error) {
		return api.LedgerInfo{Size: v.Size(), Root: v.Root()}, nil
	})
}

func (a *API) inclusion(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	index, err := queryUint(r, "index")
	if err != nil {
		return err
	}
	size, err := queryUint(r, "size")
	if err != nil {
		return err
	}
	if size == 0 {
		return api.Invalid("size", "1 or more: a proof is of a leaf in a tree of size entries")
	}
	if index >= size {
		return api.Invalid("index", "must be below size")
	}
	return a.read(w, r, func(v *ledger.View) (any, error) {
		root, err := v.RootAt(size)
		if err != nil {
			return nil, err
		}
		proof, err := v.InclusionProof(index, size)
		if err != nil {
			return nil, err
		}
		leaf, err := v.LeafHash(index)
		if err != nil {
			return nil, err
		}
		return api.InclusionProof{Index: index, Size: size, Root: root, Leaf: leaf, Proof: nonNil(proof)}, nil
	})
}

func (a *API) consistency(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	from, err := queryUint(r, "from")
	if err != nil {
		return err
	}
	to, err := queryUint(r, "to")
	if err != nil {
		return err
	}
	if from > to {
		return api.Invalid("from", "must not be above to")
	}
	return a.read(w, r, func(v *ledger.View) (any, error) {
		fr, err := v.RootAt(from)
		if err != nil {
			return nil, err
		}
		tr, err := v.RootAt(to)
		if err != nil {
			return nil, err
		}
		proof, err := v.ConsistencyProof(from, to)
		if err != nil {
			return nil, err
		}
		return api.ConsistencyProof{From: from, To: to, FromRoot: fr, ToRoot: tr, Proof: nonNil(proof)}, nil
	})
}

func nonNil(p []merkle.Hash) []merkle.Hash {
	if p == nil {
		return []merkle.Hash{}
	}
	return p
}
