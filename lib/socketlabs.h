/* socketlabs.h: the names SocketLabs' Event Webhook gives its event Types
 * and enumerations, written once for the parser, the config's filters and
 * the samples. */
#ifndef SLH_SOCKETLABS_H
#define SLH_SOCKETLABS_H

#include <stddef.h>

/* The Type of the one-off event that proves an endpoint; it is answered,
 * never stored or relayed. */
#define SLH_SL_VALIDATION "Validation"

/* The stored event Types and the TrackingType names in number order, as
 * initialiser lists (the samples list them with their own). */
#define SLH_SL_TYPE_NAMES                                                      \
    "Queued", "Deferred", "Delivered", "Failed", "Complaint", "Tracking"
#define SLH_SL_TRACKING_NAMES "Click", "Open", "Unsubscribe"

/* How many stored event Types there are, and enumeration values. */
#define SLH_SL_TYPES 6
#define SLH_SL_ENUM_VALUES 3

/*
 * The Types of events that are stored and relayed, as the spec spells them:
 * Queued, Deferred, Delivered, Failed, Complaint, Tracking.
 */
extern const char *const slh_sl_types[SLH_SL_TYPES];

/* TrackingType names indexed by their number: Click, Open, Unsubscribe
 * (enum slh_tracking). */
extern const char *const slh_sl_tracking_kinds[SLH_SL_ENUM_VALUES];

/* FailureType names indexed by their number: Temporary, Permanent,
 * Suppressed. */
extern const char *const slh_sl_failure_kinds[SLH_SL_ENUM_VALUES];

/*
 * The index in names (n of them) of the name s[0..len) spells, matched
 * case-insensitively (s need not be NUL-terminated); -1 when none.
 */
int slh_sl_find(const char *const *names, size_t n, const char *s, size_t len);

/*
 * The number 0..2 of an enumeration value written as text: a digit "0" to
 * "2" or one of names (a SLH_SL_ENUM_VALUES table; any case). -1 for "",
 * which counts as absent (the legacy form API sent every field, empty when
 * it did not apply); -2 for anything else.
 */
int slh_sl_enum_text(const char *const names[SLH_SL_ENUM_VALUES],
                     const char *s);

#endif
