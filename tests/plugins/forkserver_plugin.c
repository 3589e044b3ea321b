/* A library the forkserver test dlopens after the server started: its
 * functions are not in the server, so starting one must be refused. */
__attribute__((visibility("default"))) int mp_test_plugin_target(void *arg);

int mp_test_plugin_target(void *arg)
{
    (void)arg;
    return 9;
}
