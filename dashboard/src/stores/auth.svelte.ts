/**
 * The admin key and who it is. The key lives in sessionStorage (this tab) or, with "Remember on
 * this device", in localStorage; never in the DOM. A 401 anywhere forgets it and leaves a message
 * for the sign-in page.
 */
import { ApiError, UNAUTHORIZED_MESSAGE, configureApi, errorText } from '../lib/api/client';
import { fetchMe, type Me } from '../lib/api/me';

const STORAGE_KEY = 'picloud.adminKey';

function stored(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function forget(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
    localStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage unavailable: nothing kept
  }
}

class Auth {
  key = $state<string | null>(stored());
  me = $state<Me | null>(null);
  /** Why the user is on the sign-in page (a refused key, sign-out). */
  notice = $state<string | null>(null);

  /** Checks the key with /api/v1/me, then keeps it. Returns an error message or null. */
  async signIn(key: string, remember: boolean): Promise<string | null> {
    const k = key.trim();
    if (!k) return 'Enter an admin key.';
    try {
      const me = await fetchMe(k);
      forget();
      (remember ? localStorage : sessionStorage).setItem(STORAGE_KEY, k);
      this.key = k;
      this.me = me;
      this.notice = null;
      return null;
    } catch (e) {
      return errorText(e);
    }
  }

  /** On start with a stored key: who is it? false when the key is refused or absent. */
  async restore(): Promise<boolean> {
    if (!this.key) return false;
    try {
      this.me = await fetchMe(this.key);
      return true;
    } catch (e) {
      // A refused key is forgotten; any other failure keeps it for the next try.
      if (e instanceof ApiError && e.status === 401) this.signOut(UNAUTHORIZED_MESSAGE);
      else this.notice = `The server could not confirm the key: ${errorText(e)}`;
      return false;
    }
  }

  signOut(notice: string | null = 'Signed out. The key was forgotten on this device.'): void {
    forget();
    this.key = null;
    this.me = null;
    this.notice = notice;
  }

  /** The central 401 handler. */
  unauthorized(): void {
    if (this.key !== null) this.signOut(UNAUTHORIZED_MESSAGE);
  }
}

export const auth = new Auth();

configureApi({ key: () => auth.key, unauthorized: () => auth.unauthorized() });
