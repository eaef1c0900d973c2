package registry

import (
	"fmt"
	"regexp"
)

// The distribution-spec's grammar for repository names and tags.
var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxNameLen bounds a repository name (distribution's limit).
const maxNameLen = 255

// ValidateName checks a repository name against the spec's grammar.
func ValidateName(name string) error {
	if len(name) > maxNameLen || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %q", ErrNameInvalid, name)
	}
	return nil
}

// ValidateTag checks a tag against the spec's grammar.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("%w: %q", ErrTagInvalid, tag)
	}
	return nil
}
