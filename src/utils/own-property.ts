/**
 * Sets `data[name]` as an own data property, whatever the name: a key named `__proto__` is defined,
 * not assigned, so that it stays plain data and never sets the object's prototype (IN-2).
 */
export function setOwn<T>(data: Record<string, T>, name: string, value: T): void {
  if (name === '__proto__') {
    Object.defineProperty(data, name, {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  } else {
    data[name] = value;
  }
}
