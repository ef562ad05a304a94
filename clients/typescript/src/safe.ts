/** Runs user code: its exceptions must not break the connection, so they are rethrown outside of it. */
export const safe = (f: () => void): void => {
  try {
    f();
  } catch (e) {
    setTimeout(() => {
      throw e;
    });
  }
};
