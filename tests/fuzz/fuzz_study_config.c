/* fuzz_study_config.c — the INI configuration of `brainalign run`, read
 * with ba_study_config_load (no MPI, no files written). On success the
 * configuration is complete and its counts are in range. */
#include <string.h>

#include "brainalign/study/study.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write(0, "study.ini", data, size);
    static ba_study_config cfg; /* large: keep it off the stack */
    ba_error err;
    ba_error_clear(&err);
    if (ba_study_config_load(path, &cfg, &err) == BA_OK) {
        fuzz_accepted("study.ini");
        FUZZ_ASSERT(cfg.n_subjects >= 1 && cfg.n_subjects <= BA_STUDY_MAX_SUBJECTS);
        FUZZ_ASSERT(cfg.n_layers >= 1 && cfg.n_layers <= BA_MAX_LAYERS);
        FUZZ_ASSERT(cfg.output_dir[0] && cfg.bold_pattern[0]);
        for (int s = 0; s < cfg.n_subjects; s++)
            FUZZ_ASSERT(memchr(cfg.subjects[s], '\0', BA_STUDY_NAME_MAX) != NULL);
        FUZZ_ASSERT(cfg.text != NULL);
    } else {
        fuzz_rejected("study.ini", err.message);
    }
    ba_study_config_free(&cfg);
    return 0;
}
