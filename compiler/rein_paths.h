/* rein_paths.h — where this `rein` finds the files it needs besides itself: the runtime's static
 * libraries (for `rein build`) and the standard library of objectives (lang/std, `std:NAME`).
 *
 * A `rein` runs either from its build tree or from an install prefix (`cmake --install BUILD
 * --prefix P`: P/bin/rein, P/lib/librein*.a, P/share/rein/std).  It tells which from its own
 * executable (/proc/self/exe): in the build directory it uses the build and source trees; in
 * PREFIX/BINDIR it uses PREFIX.  Any other program (a test linking the compiler's libraries)
 * gets the build and source trees.
 */
#ifndef REIN_PATHS_H
#define REIN_PATHS_H

#include <stddef.h>

/* The install prefix of this executable, or NULL when it runs from the build tree (or is not
 * `rein`).  The string is static. */
const char *rp_install_prefix(void);

/* The runtime's static libraries for a standalone trainer's link line, in link order: at most
 * MAX paths into LIBS (static strings, or strings owned by this module); returns the count. */
int rp_trainer_libs(const char **libs, int max);

/* The path of the standard library's objective NAME (lang/std/NAME.rein, or
 * PREFIX/share/rein/std/NAME.rein when installed), in a new string the caller frees. */
char *rp_std_file(const char *name);

/* The standard library's directory (static string). */
const char *rp_std_dir(void);

#endif
