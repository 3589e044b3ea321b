/* 01_process_info.c — a child prints its pid and its parent's pid (Python docs: "info") */
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

static void info(const char *title)
{
    printf("%s\n", title);
    printf("  module name: %s\n", mp_process_name(mp_current_process()));
    mp_process *parent = mp_parent_process();
    printf("  parent process: %d\n", parent ? (int)mp_process_pid(parent) : (int)getppid());
    printf("  process id: %d\n", (int)mp_process_pid(mp_current_process()));
}

static int f(void *name)
{
    info("function f");
    printf("  hello %s\n", (const char *)name);
    return 0;
}

int main(void)
{
    info("main line");
    mp_process *p;
    mp_process_new(&p, f, "bob", NULL);
    mp_process_start(p);
    mp_process_join(p, -1);
    mp_process_destroy(p);
    return 0;
}
