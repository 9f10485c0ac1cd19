/* parallel.c — error agreement across ranks, range splitting, progress. */
#include "brainalign/parallel/parallel.h"

#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

ba_status ba_mpi_check(int mpi_rc, const char *what, ba_error *err)
{
    if (mpi_rc == MPI_SUCCESS) return BA_OK;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(mpi_rc, text, &len);
    return ba_fail(err, BA_ERR_MPI, "%s failed: %s", what, text);
}

ba_status ba_mpi_agree(MPI_Comm comm, ba_status rc, ba_error *err)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int mine = (rc != BA_OK) ? rank : size;
    int first = size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size) return BA_OK;
    /* The whole record travels: message, origin trail and blamed input. */
    ba_error sent;
    if (rank == first) {
        if (err) {
            sent = *err;
            sent.message[sizeof sent.message - 1] = '\0';
            sent.origin[sizeof sent.origin - 1] = '\0';
        } else {
            ba_error_clear(&sent);
            snprintf(sent.message, sizeof sent.message, "%s", ba_status_name(rc));
        }
        sent.code = rc;
    }
    MPI_Bcast(&sent, (int)sizeof sent, MPI_BYTE, first, comm);
    if (err) *err = sent;
    return sent.code;
}

void ba_split_range(long total, int parts, int index, long *begin, long *end)
{
    long base = total / parts, extra = total % parts;
    long b = index * base + (index < extra ? index : extra);
    *begin = b;
    *end = b + base + (index < extra ? 1 : 0);
}

double ba_now(void) { return MPI_Wtime(); }

void ba_progress_begin(ba_progress *p, MPI_Comm comm, bool quiet,
                       const char *label)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    memset(p, 0, sizeof *p);
    p->enabled = !quiet && rank == 0;
    p->out = stderr;
    p->tty = isatty(fileno(stderr));
    p->start = p->last_print = ba_now();
    snprintf(p->label, sizeof p->label, "%s", label);
}

void ba_progress_update(ba_progress *p, double done, double total)
{
    if (!p->enabled) return;
    double now = ba_now();
    double frac = total > 0 ? done / total : 1.0;
    if (frac > 1) frac = 1;
    double elapsed = now - p->start;
    double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    if (p->tty) {
        if (now - p->last_print < 0.2 && frac < 1) return;
        int width = 30, filled = (int)(frac * width);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
        fprintf(p->out, "\r%-14s [%s] %5.1f%%  %6.1fs elapsed, %6.1fs left ",
                p->label, bar, 100 * frac, elapsed, eta);
    } else {
        if (now - p->last_print < 5.0 && frac < 1) return;
        fprintf(p->out, "%s: %5.1f%% done, %.1fs elapsed, %.1fs left\n",
                p->label, 100 * frac, elapsed, eta);
    }
    fflush(p->out);
    p->last_print = now;
}

void ba_progress_end(ba_progress *p)
{
    if (!p->enabled) return;
    if (p->tty) fprintf(p->out, "\n");
    fprintf(p->out, "%s: done in %.2fs\n", p->label, ba_now() - p->start);
    fflush(p->out);
}

void ba_release_large_blocks(void)
{
#ifdef __GLIBC__
    const char *keep = getenv("BRAINALIGN_KEEP_MPI_MALLOC");
    if (keep && *keep && strcmp(keep, "0") != 0) return;
    mallopt(M_MMAP_MAX, 65536);           /* glibc's default, which Open MPI sets to 0 */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);   /* fixed: no dynamic raising after frees */
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
#endif
}
