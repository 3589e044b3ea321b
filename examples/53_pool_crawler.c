/* 53_pool_crawler.c — apply_async "fetches" pages; a callback in the parent extracts each <title>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

/* In a worker: "fetch" the page (read the local file named by arg). */
static int fetch(const void *arg, size_t len, mp_task *t)
{
    char path[512];
    snprintf(path, sizeof path, "%.*s", (int)len, (const char *)arg);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return mp_task_fail(t, MP_ENOENT, "cannot fetch %s", path);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    usleep(50 * 1000); /* the network is slow */
    return mp_task_return(t, buf, n);
}

struct page {
    const char *url;
};

/* In the parent, on the pool's result thread, one page at a time. */
static void on_page(mp_async_result *r, void *arg)
{
    const struct page *pg = arg;
    const char *html;
    size_t len;
    mp_async_result_get(r, 0, (const void **)&html, &len);
    char *body = strndup(html, len);
    char *a = body ? strstr(body, "<title>") : NULL, *b = a ? strstr(a, "</title>") : NULL;
    if (a && b)
        printf("  %-24s %zu bytes  title: \"%.*s\"\n", pg->url, len, (int)(b - a - 7), a + 7);
    else
        printf("  %-24s %zu bytes  (no title)\n", pg->url, len);
    free(body);
}

static void on_error(mp_async_result *r, void *arg)
{
    const struct page *pg = arg;
    printf("  %-24s failed: %s\n", pg->url, mp_async_result_message(r));
}

int main(void)
{
    static const char *names[] = {"index", "processes", "pools", "queues", "subprocess", "missing"};
    enum { N = sizeof names / sizeof names[0] };
    const char *dir = access("pages/index.html", R_OK) == 0 ? "pages" : "examples/pages";
    struct page pages[N];
    char urls[N][256];
    mp_pool *pool;
    if (mp_pool_new(&pool, &(mp_pool_options){.processes = 3}) != 0)
        return 1;
    printf("crawling %d pages with 3 workers:\n", N);
    for (int i = 0; i < N; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/%s.html", dir, names[i]);
        pages[i].url = urls[i];
        mp_pool_apply_async(pool, NULL, fetch, urls[i], strlen(urls[i]),
                            &(mp_async_options){.callback = on_page,
                                                .error_callback = on_error,
                                                .cb_arg = &pages[i]});
    }
    mp_pool_close(pool);
    mp_pool_join(pool, -1);
    mp_pool_destroy(pool);
    printf("done\n");
    return 0;
}
