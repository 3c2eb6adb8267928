package daemon

// umask does nothing on Windows, which has no umask: a unix socket there
// gets the access control list of its directory.
func umask(int) int { return 0 }
