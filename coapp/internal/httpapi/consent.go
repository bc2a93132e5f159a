package httpapi

import (
	"net/http"

	"github.com/google/uuid"

	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/server"
	"coapp.coop/consent"
	"coapp.coop/ledger"
)

// viewRead brings this node's state up to the leader's before a read of
// it, unless the request asks for ?consistency=stale.
func (a *API) viewRead(r *http.Request, c api.Caller) error {
	cons, err := consistencyOf(r)
	if err != nil {
		return err
	}
	if cons == ledger.Stale {
		return nil
	}
	return a.svc.CatchUp(r.Context(), c)
}

func (a *API) giveConsent(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.ConsentRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	rc, err := a.svc.GiveConsent(r.Context(), c, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rc)
}

func (a *API) changeConsent(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return api.Invalid("id", "not a UUID")
	}
	var req api.ConsentChange
	if err := decode(r, &req); err != nil {
		return err
	}
	rc, err := a.svc.ChangeConsent(r.Context(), c, id, r.PathValue("action"), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rc)
}

func (a *API) submitEvent(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	if !a.svc.IsLeader() {
		return a.forward(w, r)
	}
	var s api.SignedEvent
	if err := decode(r, &s); err != nil {
		return err
	}
	rc, err := a.svc.SubmitEvent(r.Context(), c, s)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rc)
}

func (a *API) listConsents(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.SubjectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	list, err := a.svc.Consents(c, req.Subject)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, list)
}

func (a *API) getConsent(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return api.Invalid("id", "not a UUID")
	}
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	h, err := a.svc.Consent(c, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

func (a *API) checkConsent(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.CheckRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	d, err := a.svc.CheckConsent(c, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (a *API) verifyConsent(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var req api.VerifyRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := a.viewRead(r, c); err != nil {
		return err
	}
	e, err := a.svc.VerifyConsentReceipt(r.Context(), req.Receipt)
	switch {
	case server.IsConsentError(err):
		return writeJSON(w, http.StatusOK, api.VerifyResult{Error: consentMessage(err)})
	case err != nil:
		return err
	}
	return writeJSON(w, http.StatusOK, api.VerifyResult{Valid: true, Event: &e})
}

// consentMessage is why a receipt did not verify, as consent says it.
func consentMessage(err error) string {
	for e := err; e != nil; {
		if ce, ok := e.(*consent.Error); ok {
			return ce.Error()
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return err.Error()
}

func (a *API) purposes(w http.ResponseWriter, _ *http.Request, _ api.Caller) error {
	return writeJSON(w, http.StatusOK, api.PurposeList{Purposes: a.svc.Purposes()})
}

func (a *API) definePurpose(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	var p consent.Purpose
	if err := decode(r, &p); err != nil {
		return err
	}
	if err := a.svc.DefinePurpose(r.Context(), c, p); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (a *API) memberKey(w http.ResponseWriter, r *http.Request, _ api.Caller) error {
	info, err := a.svc.MemberKeys(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

func (a *API) rotateKey(w http.ResponseWriter, r *http.Request, c api.Caller) error {
	info, err := a.svc.RotateMemberKey(r.Context(), c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}
