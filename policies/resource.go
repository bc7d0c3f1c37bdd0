package policies

// AnyResource is the resource of APIs that act on no single namespace or
// repository (create namespace, list namespaces and repositories, temporary
// token, user and policy management), and the policy resource that matches
// everything.
const AnyResource = "*"

// NamespaceResource names a namespace: acs:cr:$region:$account:repository/$ns.
// The arguments are concrete names; '*' in them is not a wildcard here, since
// only policy patterns interpret wildcards.
func NamespaceResource(region, accountID, ns string) string {
	return "acs:cr:" + region + ":" + accountID + ":repository/" + ns
}

// RepositoryResource names a repository:
// acs:cr:$region:$account:repository/$ns/$repo.
func RepositoryResource(region, accountID, ns, repo string) string {
	return NamespaceResource(region, accountID, ns) + "/" + repo
}
