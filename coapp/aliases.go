package coapp

import (
	"coapp.coop/coapp/api"
	"coapp.coop/coapp/internal/format"
)

// The API's types, which the Go API takes and returns: coapp.Record is
// api.Record, and so on.
type (
	Record           = api.Record
	Receipt          = api.Receipt
	RecordInfo       = api.RecordInfo
	Schema           = api.Schema
	Field            = api.Field
	Policy           = api.Policy
	Rules            = api.Rules
	Committee        = api.Committee
	Proposal         = api.Proposal
	Vote             = api.Vote
	ProposalStatus   = api.ProposalStatus
	Dataset          = api.Dataset
	DatasetType      = api.DatasetType
	Transform        = api.Transform
	DatasetInfo      = api.DatasetInfo
	Grant            = api.Grant
	GrantInfo        = api.GrantInfo
	ExportRequest    = api.ExportRequest
	ExportAudit      = api.ExportAudit
	AggregateRequest = api.AggregateRequest
	DPParams         = api.DPParams
	AggregateGroup   = api.AggregateGroup
	AggregateResult  = api.AggregateResult
	Share            = api.Share
	SharesReport     = api.SharesReport
	ConsentRequest   = api.ConsentRequest
	ConsentChange    = api.ConsentChange
	ConsentReceipt   = api.ConsentReceipt
	CheckRequest     = api.CheckRequest
	SubjectRecord    = api.SubjectRecord
	SubjectReport    = api.SubjectReport
	NodeInfo         = api.NodeInfo
	NodeStatus       = api.NodeStatus
	ClusterInfo      = api.ClusterInfo
	MemberKeysInfo   = api.MemberKeysInfo
	LedgerInfo       = api.LedgerInfo
	InclusionProof   = api.InclusionProof
	ConsistencyProof = api.ConsistencyProof
	ValidationError  = api.ValidationError
	Caller           = api.Caller
)

// Proposal kinds.
const (
	ProposeAdmit   = api.ProposeAdmit
	ProposeRemove  = api.ProposeRemove
	ProposeDataset = api.ProposeDataset
	ProposeGrant   = api.ProposeGrant
)

// Ledger kinds of the federation's entries (see package ledger: the
// ledger stores them as opaque, typed entries).
const (
	KindGenesis     = format.KindGenesis
	KindNode        = format.KindNode
	KindToken       = format.KindToken
	KindRecord      = format.KindRecord
	KindBatch       = format.KindBatch
	KindSchema      = format.KindSchema
	KindMemberKey   = format.KindMemberKey
	KindPurpose     = format.KindPurpose
	KindProposal    = format.KindProposal
	KindVote        = format.KindVote
	KindExport      = format.KindExport
	KindKeyRotation = format.KindKeyRotation
)

// Export headers: the audit entry's index and the output's SHA-256, sent
// before the body (the audit entry is in the ledger before any byte is).
const (
	HeaderExportSHA256 = api.HeaderExportSHA256
	HeaderExportAudit  = api.HeaderExportAudit
	HeaderExportRows   = api.HeaderExportRows
)

// The errors of the Go API and of the HTTP API alike (see package api for
// what each means and its HTTP status). Test them with errors.Is: an error
// answered over HTTP through package client matches the same sentinel.
var (
	ErrInvalid         = api.ErrInvalid
	ErrUnauthenticated = api.ErrUnauthenticated
	ErrForbidden       = api.ErrForbidden
	ErrNotMember       = api.ErrNotMember
	ErrNotFound        = api.ErrNotFound
	ErrNotBootstrapped = api.ErrNotBootstrapped
	ErrConflict        = api.ErrConflict
	ErrVoted           = api.ErrVoted
	ErrClosed          = api.ErrClosed
	ErrConsentExists   = api.ErrConsentExists
	ErrConsentChain    = api.ErrConsentChain
	ErrWithdrawn       = api.ErrWithdrawn
	ErrExpired         = api.ErrExpired
	ErrUnknownPurpose  = api.ErrUnknownPurpose
	ErrBadSignature    = api.ErrBadSignature
	ErrBadReceipt      = api.ErrBadReceipt
	ErrRefused         = api.ErrRefused
	ErrBudgetSpent     = api.ErrBudgetSpent
	ErrKeyConflict     = api.ErrKeyConflict
	ErrErased          = api.ErrErased
	ErrTooLarge        = api.ErrTooLarge
	ErrOutOfRange      = api.ErrOutOfRange
	ErrNoLeader        = api.ErrNoLeader
	ErrTimeout         = api.ErrTimeout
	ErrCorrupt         = api.ErrCorrupt
	ErrInternal        = api.ErrInternal
)
