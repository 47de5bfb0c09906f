/* hotline's pjproject build limits (see ../shared/PJSUA2.md and docs/architecture.md).
 * The PyPI wheels stop at 4 calls per process; a hotline worker needs hundreds. */
#define PJSUA_MAX_CALLS                  1024
#define PJSUA_MAX_PLAYERS                1024
#define PJSUA_MAX_RECORDERS              1024
#define PJSUA_MAX_CONF_PORTS             4096
#define PJSUA_MAX_ACC                    32
#define PJ_IOQUEUE_MAX_HANDLES           8192
/* Without this every call resolves the host name; a host missing from /etc/hosts stalls 5 s. */
#define PJ_GETHOSTIP_DISABLE_LOCAL_RESOLUTION 1
/* Server use: no sound device, no video. */
#define PJMEDIA_HAS_VIDEO                0
#define PJMEDIA_AUDIO_DEV_HAS_NULL_AUDIO 1
/* Telephone bridge: log less, keep assertions (API misuse must abort, not corrupt). */
#define PJ_LOG_MAX_LEVEL                 5
