package policies

import "strings"

// Actions checked by the API. The comment on each group names the resource the
// action is checked on: "*" (AnyResource), the namespace resource
// (NamespaceResource) or the repository resource (RepositoryResource).
const (
	// Namespaces. Create and list are checked on "*"; the others on the namespace.
	ActionCreateNamespace = "cr:CreateNamespace"
	ActionDeleteNamespace = "cr:DeleteNamespace"
	ActionUpdateNamespace = "cr:UpdateNamespace"
	ActionGetNamespace    = "cr:GetNamespace"
	ActionListNamespace   = "cr:ListNamespace"

	// Repositories. Create is checked on the namespace, list on "*", the
	// others on the repository.
	ActionCreateRepository = "cr:CreateRepository"
	ActionDeleteRepository = "cr:DeleteRepository"
	ActionUpdateRepository = "cr:UpdateRepository"
	ActionGetRepository    = "cr:GetRepository"
	ActionListRepository   = "cr:ListRepository"

	// Image versions, on the repository.
	ActionListRepositoryTag        = "cr:ListRepositoryTag"
	ActionDeleteRepositoryTag      = "cr:DeleteRepositoryTag"
	ActionGetRepositoryManifest    = "cr:GetRepositoryManifest"
	ActionDeleteRepositoryManifest = "cr:DeleteRepositoryManifest"
	ActionGetRepositoryLayers      = "cr:GetRepositoryLayers"

	// Registry access. The temporary token is checked on "*"; pull and push on
	// the repository.
	ActionGetAuthorizationToken = "cr:GetAuthorizationToken"
	ActionPullRepository        = "cr:PullRepository"
	ActionPushRepository        = "cr:PushRepository"

	// Code source, on the repository.
	ActionGetRepositorySource    = "cr:GetRepositorySource"
	ActionUpdateRepositorySource = "cr:UpdateRepositorySource"
	ActionDeleteRepositorySource = "cr:DeleteRepositorySource"

	// Build rules and builds, on the repository. CreateBuild is "build now";
	// UpdateBuild is cancel.
	ActionCreateBuildRule = "cr:CreateBuildRule"
	ActionListBuildRule   = "cr:ListBuildRule"
	ActionGetBuildRule    = "cr:GetBuildRule"
	ActionUpdateBuildRule = "cr:UpdateBuildRule"
	ActionDeleteBuildRule = "cr:DeleteBuildRule"
	ActionCreateBuild     = "cr:CreateBuild"
	ActionListBuild       = "cr:ListBuild"
	ActionGetBuild        = "cr:GetBuild"
	ActionGetBuildLog     = "cr:GetBuildLog"
	ActionUpdateBuild     = "cr:UpdateBuild"

	// Triggers and their records, on the repository.
	ActionCreateTrigger     = "cr:CreateTrigger"
	ActionListTrigger       = "cr:ListTrigger"
	ActionGetTrigger        = "cr:GetTrigger"
	ActionUpdateTrigger     = "cr:UpdateTrigger"
	ActionDeleteTrigger     = "cr:DeleteTrigger"
	ActionListTriggerRecord = "cr:ListTriggerRecord"

	// Scans, on the repository.
	ActionCreateRepositoryScan = "cr:CreateRepositoryScan"
	ActionGetRepositoryScan    = "cr:GetRepositoryScan"

	// Security (blocking) policies: the namespace ones on the namespace, the
	// repository ones on the repository.
	ActionGetNamespaceSecurityPolicy     = "cr:GetNamespaceSecurityPolicy"
	ActionUpdateNamespaceSecurityPolicy  = "cr:UpdateNamespaceSecurityPolicy"
	ActionGetRepositorySecurityPolicy    = "cr:GetRepositorySecurityPolicy"
	ActionUpdateRepositorySecurityPolicy = "cr:UpdateRepositorySecurityPolicy"

	// Retention rules and runs (SPEC §14), on the namespace. Reading a rule or a run, like listing them,
	// is cr:ListRetentionRule.
	ActionListRetentionRule   = "cr:ListRetentionRule"
	ActionCreateRetentionRule = "cr:CreateRetentionRule"
	ActionUpdateRetentionRule = "cr:UpdateRetentionRule"
	ActionDeleteRetentionRule = "cr:DeleteRetentionRule"
	ActionStartRetentionRun   = "cr:StartRetentionRun"
	// The audit log (SPEC §14), on "*". A cr:List* grant on "*" (AliyunContainerRegistryReadOnlyAccess,
	// FullAccess) includes it.
	ActionListAuditLogs = "cr:ListAuditLogs"

	// Code accounts on Git hosts (SPEC §16), on "*": the instance's, not a repository's. Listing the
	// repositories an account's token sees is cr:GetCodeAccount.
	ActionCreateCodeAccount = "cr:CreateCodeAccount"
	ActionGetCodeAccount    = "cr:GetCodeAccount"
	ActionListCodeAccount   = "cr:ListCodeAccount"
	ActionDeleteCodeAccount = "cr:DeleteCodeAccount"
)

// RAM actions manage users and policies, checked on "*". Custom documents
// cannot name them (they may only speak cr: or "*"), so in practice only the
// "*" action of AdministratorAccess grants them.
const (
	ActionCreateUser      = "ram:CreateUser"
	ActionListUsers       = "ram:ListUsers"
	ActionGetUser         = "ram:GetUser"
	ActionUpdateUser      = "ram:UpdateUser"
	ActionDeleteUser      = "ram:DeleteUser"
	ActionCreateAccessKey = "ram:CreateAccessKey"
	ActionListAccessKeys  = "ram:ListAccessKeys"
	ActionUpdateAccessKey = "ram:UpdateAccessKey"
	ActionDeleteAccessKey = "ram:DeleteAccessKey"
	ActionAttachPolicy    = "ram:AttachPolicy"
	ActionDetachPolicy    = "ram:DetachPolicy"
	ActionCreatePolicy    = "ram:CreatePolicy"
	ActionListPolicies    = "ram:ListPolicies"
	ActionGetPolicy       = "ram:GetPolicy"
	ActionUpdatePolicy    = "ram:UpdatePolicy"
	ActionDeletePolicy    = "ram:DeletePolicy"
)

// System actions run or inspect the installation itself (garbage collection, workers, the scanner).
// Like ram: actions they are checked on "*", custom documents cannot name
// them, and only the "*" action of AdministratorAccess grants them.
const (
	ActionStartGarbageCollection = "system:StartGarbageCollection"
	ActionListGarbageCollections = "system:ListGarbageCollections"
	ActionListWorkers            = "system:ListWorkers"
	ActionGetSystemScanner       = "system:GetScanner"
)

// AllActions lists every action Berth checks, cr: first, then ram:, then system:.
// Treat it as read-only.
var AllActions = []string{
	ActionCreateNamespace,
	ActionDeleteNamespace,
	ActionUpdateNamespace,
	ActionGetNamespace,
	ActionListNamespace,
	ActionCreateRepository,
	ActionDeleteRepository,
	ActionUpdateRepository,
	ActionGetRepository,
	ActionListRepository,
	ActionListRepositoryTag,
	ActionDeleteRepositoryTag,
	ActionGetRepositoryManifest,
	ActionDeleteRepositoryManifest,
	ActionGetRepositoryLayers,
	ActionGetAuthorizationToken,
	ActionPullRepository,
	ActionPushRepository,
	ActionGetRepositorySource,
	ActionUpdateRepositorySource,
	ActionDeleteRepositorySource,
	ActionCreateBuildRule,
	ActionListBuildRule,
	ActionGetBuildRule,
	ActionUpdateBuildRule,
	ActionDeleteBuildRule,
	ActionCreateBuild,
	ActionListBuild,
	ActionGetBuild,
	ActionGetBuildLog,
	ActionUpdateBuild,
	ActionCreateTrigger,
	ActionListTrigger,
	ActionGetTrigger,
	ActionUpdateTrigger,
	ActionDeleteTrigger,
	ActionListTriggerRecord,
	ActionCreateRepositoryScan,
	ActionGetRepositoryScan,
	ActionGetNamespaceSecurityPolicy,
	ActionUpdateNamespaceSecurityPolicy,
	ActionGetRepositorySecurityPolicy,
	ActionUpdateRepositorySecurityPolicy,
	ActionListRetentionRule,
	ActionCreateRetentionRule,
	ActionUpdateRetentionRule,
	ActionDeleteRetentionRule,
	ActionStartRetentionRun,
	ActionListAuditLogs,
	ActionCreateCodeAccount,
	ActionGetCodeAccount,
	ActionListCodeAccount,
	ActionDeleteCodeAccount,

	ActionCreateUser,
	ActionListUsers,
	ActionGetUser,
	ActionUpdateUser,
	ActionDeleteUser,
	ActionCreateAccessKey,
	ActionListAccessKeys,
	ActionUpdateAccessKey,
	ActionDeleteAccessKey,
	ActionAttachPolicy,
	ActionDetachPolicy,
	ActionCreatePolicy,
	ActionListPolicies,
	ActionGetPolicy,
	ActionUpdatePolicy,
	ActionDeletePolicy,

	ActionStartGarbageCollection,
	ActionListGarbageCollections,
	ActionListWorkers,
	ActionGetSystemScanner,
}

// knownCRActions maps the lower-cased name of every cr: action to its
// canonical spelling, so validation can catch typos such as
// "cr:PullRepositry" that would otherwise never match anything.
var knownCRActions = func() map[string]string {
	m := make(map[string]string)
	for _, a := range AllActions {
		if strings.HasPrefix(a, "cr:") {
			m[strings.ToLower(a)] = a
		}
	}
	return m
}()
